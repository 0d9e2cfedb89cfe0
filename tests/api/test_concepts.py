"""/v2/concepts through HTTP."""

from __future__ import annotations

from tests.helpers import Api


def test_create_get_list(api: Api) -> None:
    r = api.post("/concepts", {"concepts": [{"id": "dog", "name": "Dog"}, {"id": "cat", "value": 0.0}]})
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["concepts"]] == ["dog", "cat"]
    assert api.get("/concepts/dog").json()["concept"]["name"] == "Dog"
    assert api.get("/concepts/cat").json()["concept"]["name"] == "cat"
    listed = api.get("/concepts", params={"page": 1, "per_page": 20}).json()["concepts"]
    assert {c["id"] for c in listed} == {"dog", "cat"}
    assert api.get("/concepts", params={"page": 2, "per_page": 20}).json()["concepts"] == []


def test_duplicates_refuse_the_whole_request(api: Api) -> None:
    api.post("/concepts", {"concepts": [{"id": "dog"}]})
    r = api.post("/concepts", {"concepts": [{"id": "new"}, {"id": "dog"}]})
    assert r.status_code == 400 and r.json()["status"]["code"] == 40003
    assert api.get("/concepts/new").status_code == 404
    r = api.post("/concepts", {"concepts": [{"id": "x"}, {"id": "x"}]})
    assert r.json()["status"]["code"] == 40003


def test_invalid_concepts(api: Api) -> None:
    assert api.post("/concepts", {"concepts": [{"name": "no id"}]}).json()["status"]["code"] == 11102
    assert api.post("/concepts", {"concepts": [{"id": "bad/id"}]}).json()["status"]["code"] == 11102
    assert api.post("/concepts", {"concepts": [{"id": "   "}]}).json()["status"]["code"] == 11102
    assert api.post("/concepts", {"concepts": [{"id": "golden retriever"}]}).json()["status"]["code"] == 10000
    assert api.get("/concepts/golden retriever").json()["concept"]["id"] == "golden retriever"
    assert api.post("/concepts", {"concepts": []}).json()["status"]["code"] == 11102
    assert api.post("/concepts", {"concepts": [{"id": 5}]}).json()["status"]["code"] == 11102
    r = api.get("/concepts/nope")
    assert r.status_code == 404 and r.json()["status"]["code"] == 40003


def test_rename(api: Api) -> None:
    api.post("/concepts", {"concepts": [{"id": "dog"}]})
    r = api.patch("/concepts", {"action": "overwrite", "concepts": [{"id": "dog", "name": "Good dog"}]})
    assert r.json()["concepts"][0]["name"] == "Good dog"
    assert api.get("/concepts/dog").json()["concept"]["name"] == "Good dog"
    r = api.patch("/concepts", {"action": "overwrite", "concepts": [{"id": "ghost", "name": "x"}]})
    assert r.status_code == 404


def test_search_covers_the_built_in_models_concepts_after_the_apps(api: Api) -> None:
    api.post("/concepts", {"concepts": [{"id": "my-dog", "name": "dogfish of mine"}]})
    r = api.post("/concepts/searches", {"concept_query": {"name": "dog*"}, "pagination": {"per_page": 100}})
    found = [(c["name"], c["app_id"]) for c in r.json()["concepts"]]
    assert found[0] == ("dogfish of mine", api.app_id)
    assert set(found[1:]) == {("dog sled", "main"), ("dog", "main")}, found
    page2 = api.post("/concepts/searches", {"concept_query": {"name": "dog*"}, "pagination": {"page": 2, "per_page": 1}})
    assert [c["name"] for c in page2.json()["concepts"]] == [found[1][0]]


def test_search_by_name_with_wildcard(api: Api) -> None:
    api.post("/concepts", {"concepts": [{"id": "c1", "name": "Golden retriever"}, {"id": "c2", "name": "Labrador"},
                                        {"id": "c3", "name": "retriever_100%"}]})
    names = lambda q: sorted(c["name"] for c in api.post(  # noqa: E731 - the app's own (the models' follow)
        "/concepts/searches", {"concept_query": {"name": q}}).json()["concepts"] if c["app_id"] == api.app_id)
    assert names("*retriever*") == ["Golden retriever", "retriever_100%"]
    assert names("lab*") == ["Labrador"]
    assert names("labrador") == ["Labrador"]
    assert names("retriever_100%") == ["retriever_100%"]
    assert names("retriever_1") == []
    assert api.post("/concepts/searches", {"concept_query": {"name": ""}}).json()["status"]["code"] == 11102
