"""Drive the Python ``clarifai`` 2.6.2 client (``clarifai.rest.ClarifaiApp``) against a live server.

Config (JSON on stdin): base_url, key, prefix, png_b64, png2_b64, image_url; photos (name -> path
of a JPEG: cat, face, coffee) and photo_urls (the same photos on the loopback image host).
Pointing 2.6.2 at a server: ``ClarifaiApp(api_key=..., base_url="http://host:port")`` (the
scheme is kept; without one it assumes https), or the ``CLARIFAI_API_BASE`` environment
variable, read when the ApiClient is built. Either way it calls ``<base>/v2/...``.
"""

import base64
import os

from clarifai.rest import ApiError, BoundingBox, ClarifaiApp, FeedbackInfo, FeedbackType, Region, RegionInfo
from clarifai.rest import Concept as ClConcept
from clarifai.rest import Image as ClImage
from clarifai.rest.geo import Geo, GeoBox, GeoLimit, GeoPoint
from steps import Steps, read_config, take

cfg = read_config()
P = cfg["prefix"]
steps = Steps()


def image_view(img):
    return {"id": img.input_id, "url": img.url, "concepts": sorted(img.concepts or []),
            "not_concepts": sorted(img.not_concepts or []), "has_base64": bool(img.base64)}


def concept_view(c):
    return {"id": c.concept_id, "name": c.concept_name}


def make_app():
    # ClarifaiApp() pages GET /v2/models?page=N&per_page=20 until a page is empty.
    return ClarifaiApp(api_key=cfg["key"], base_url=cfg["base_url"])


app = steps.obtain("init", make_app)

GENERAL = "aaa03c23b3724a16a56b629203edc62c"
PHOTO = {name: open(path, "rb").read() for name, path in cfg.get("photos", {}).items()}
PHOTO_B64 = {name: base64.b64encode(data) for name, data in PHOTO.items()}  # bytes, as 2.6.2 wants
PHOTO_URL = cfg.get("photo_urls", {})


def concept_list(data):
    return [{"id": c.get("id"), "name": c.get("name"), "value": c.get("value", 0.0)}
            for c in data.get("concepts", [])]


def region_view(r):
    box = r.get("region_info", {}).get("bounding_box", {})
    return {"id": r.get("id"), "value": r.get("value"),
            "box": {k: box.get(k, 0.0) for k in ("top_row", "left_col", "bottom_row", "right_col")},
            "concepts": concept_list(r.get("data", {}))}


def predict_view(res):
    """A predict response (the dict 2.6.2 returns) reduced to what the tests check."""
    outputs = []
    for o in res.get("outputs", []):
        model = o.get("model", {})
        data = o.get("data", {})
        outputs.append({"id": o.get("id"), "status": o.get("status", {}).get("code"),
                        "model_id": model.get("id"), "version_id": model.get("model_version", {}).get("id"),
                        "input_id": o.get("input", {}).get("id"), "concepts": concept_list(data),
                        "regions": [region_view(r) for r in data.get("regions", [])]})
    return {"status": res.get("status", {}).get("code"), "outputs": outputs}


def search_view(res):
    """A raw search response: the search id and the ranked hits."""
    return {"id": res.get("id"), "status": res.get("status", {}).get("code"),
            "hits": [{"id": h["input"]["id"], "score": h.get("score", 0.0)} for h in res.get("hits", [])]}


def model_view(m):
    return {"model_id": m.model_id, "name": getattr(m, "model_name", None), "version": m.model_version,
            "type": getattr(m, "output_info", {}).get("type")}


def prior(name):
    """The value of an earlier step (its failure is reported there; here it is a plain error)."""
    got = steps.results.get(name)
    if not got or not got["ok"]:
        raise RuntimeError("needs step %r, which failed" % name)
    return got["value"]


def status_code(res):
    return res["status"]["code"]


def refused(fn):
    """What the server answered a call the client raised ApiError for (or Ok if it did not)."""
    try:
        fn()
    except ApiError as exc:
        return {"http_status": exc.response.status_code, "code": exc.error_code}
    return {"http_status": 200, "code": 10000}


def run_feedback():
    """Feedback through 2.6.2's own methods, each on the real output or search it is about."""
    user, session = P + "user", P + "session"

    def info(event_type, **ref):
        return FeedbackInfo(end_user_id=user, session_id=session, event_type=event_type, **ref)

    # concept feedback on the public general model (POST /v2/models/{id}/feedback) about the
    # URL prediction, naming the stored input that holds the same photo
    steps.run("feedback_concepts", lambda: status_code(app.public_models.general_model.send_concept_feedback(
        input_id=P + "cat", url=PHOTO_URL["cat"], concepts=["cat", "tabby cat", P + "kitty"], not_concepts=["dog"],
        feedback_info=info("annotation", output_id=prior("predict_public_url")["outputs"][0]["id"]))))
    # a Model got by name has its version id: POST /v2/models/{id}/versions/{version_id}/feedback
    steps.run("feedback_concepts_version", lambda: status_code(app.models.get("general-v1.3").send_concept_feedback(
        input_id=P + "cat", url=PHOTO_URL["cat"], concepts=["Egyptian Mau"], not_concepts=["tiger cat"],
        feedback_info=info("annotation", output_id=prior("predict_versioned_url")["outputs"][0]["id"]))))

    # region feedback on the face model, all four kinds. 2.6.2 drops "feedback": "accurate" and
    # every coordinate equal to 0 (protobuf defaults): the not_detected box starts at (0, 0).
    def regions():
        face = prior("predict_face_b64")["outputs"][0]
        predicted = face["regions"][0]
        b = predicted["box"]
        face_concept = [ClConcept(concept_id="face", value=1.0)]
        return status_code(app.public_models.face_detection_model.send_region_feedback(
            input_id=P + "face", url=PHOTO_URL["face"], feedback_info=info("annotation", output_id=face["id"]),
            regions=[
                Region(RegionInfo(BoundingBox(b["top_row"], b["left_col"], b["bottom_row"], b["right_col"]),
                                  FeedbackType.accurate), concepts=face_concept, region_id=predicted["id"]),
                Region(RegionInfo(BoundingBox(0.55, 0.3, 0.75, 0.5), FeedbackType.misplaced), concepts=face_concept),
                Region(RegionInfo(BoundingBox(0.0, 0.0, 0.1, 0.1), FeedbackType.not_detected), concepts=face_concept),
                Region(RegionInfo(BoundingBox(0.8, 0.8, 0.95, 0.95), FeedbackType.false_positive),
                       concepts=[ClConcept(concept_id="face", value=0.0)]),
            ]))

    steps.run("feedback_regions", regions)
    steps.run("feedback_search", lambda: status_code(app.inputs.send_search_feedback(
        P + "cat", feedback_info=info("search_click", search_id=prior("search_predicted")["id"]))))

    def click_on_page_two():
        page2 = prior("search_face_pages")[1]
        clicked = page2["hits"][0]["id"]
        status = status_code(app.inputs.send_search_feedback(
            clicked, feedback_info=info("search_click", search_id=page2["id"])))
        return {"status": status, "search_id": page2["id"], "input_id": clicked}

    steps.run("feedback_search_page2", click_on_page_two)

    # an output id our server never made: stored unlinked, as Clarifai accepted it; refused: a clicked
    # input that was no hit of a known search (404)
    steps.run("feedback_unknown_output", lambda: refused(lambda: app.public_models.general_model.send_concept_feedback(
        input_id=P + "cat", url=PHOTO_URL["cat"], concepts=["cat"],
        feedback_info=info("annotation", output_id="0123456789abcdef0123456789abcdef"))))
    steps.run("feedback_search_not_a_hit", lambda: refused(lambda: app.inputs.send_search_feedback(
        P + "face", feedback_info=info("search_click", search_id=prior("search_annotated")["id"]))))


def run_input_regions():
    """An input annotated with regions (Region, RegionInfo, BoundingBox), read back and merged into;
    deleted at the end, so the input listings below stay as they were."""
    logo = P + "logo"

    def regions_view(img):
        return [{"id": r.region_id, "box": [r.region_info.bbox.top_row, r.region_info.bbox.left_col,
                                            r.region_info.bbox.bottom_row, r.region_info.bbox.right_col]}
                for r in img.regions or []]

    steps.run("regions_create", lambda: regions_view(app.inputs.create_image(ClImage(
        base64=cfg["png_b64"].encode(), image_id=P + "regions", regions=[
            Region(RegionInfo(BoundingBox(0.1, 0.2, 0.5, 0.6)), concepts=[ClConcept(concept_id=logo, value=1.0)],
                   region_id="r1"),
            Region(RegionInfo(BoundingBox(0.0, 0.0, 0.3, 0.3)), concepts=[ClConcept(concept_id=logo, value=0.0)]),
        ]))))
    steps.run("regions_merge", lambda: regions_view(app.inputs.update(ClImage(image_id=P + "regions", regions=[
        Region(RegionInfo(BoundingBox(0.6, 0.6, 0.9, 0.9)), concepts=[ClConcept(concept_id=logo, value=1.0)],
               region_id="r2")]), action="merge")))

    def raw_then_delete():
        got = app.api.get_input(P + "regions")["input"]["data"].get("regions", [])
        app.inputs.delete(P + "regions")
        return [{"id": r.get("id"), "concepts": concept_list(r.get("data", {}))} for r in got]

    steps.run("regions_raw", raw_then_delete)


def run_models_predict_search():
    """Model lookup (by id, by name through the cache and through GET /v2/models/{name}), predict
    on real photos (base64, bytes, URL; output_config), and search (annotated and predicted
    concepts, visual similarity by URL, base64, bytes and input id)."""
    cat_b64, face_b64 = PHOTO_B64["cat"], PHOTO_B64["face"]

    # ClarifaiApp() cached the public models (app_id "main") by (name, type) while paging
    # GET /v2/models: get('general-v1.3') is answered from that cache, without a request.
    def get_cached():
        model = app.models.get("general-v1.3")
        return dict(model_view(model), cached=("general-v1.3", None) in app.models.model_id_cache)

    steps.run("model_get_cached", get_cached)
    steps.run("predict_b64_by_name", lambda: predict_view(app.models.get("general-v1.3").predict_by_base64(cat_b64)))
    steps.run("predict_public_url", lambda: predict_view(app.public_models.general_model.predict_by_url(
        PHOTO_URL["cat"])))
    steps.run("predict_public_bytes", lambda: predict_view(app.public_models.general_model.predict_by_bytes(
        PHOTO["cat"])))
    steps.run("predict_by_id", lambda: predict_view(app.models.get(model_id=GENERAL).predict_by_base64(cat_b64)))

    # Without the cache, get(name) is GET /v2/models/general-v1.3: the Model then carries the
    # version id, and predict goes to /v2/models/{id}/versions/{version_id}/outputs.
    def get_by_name_http():
        app.models.clear_model_cache()
        return model_view(app.models.get("general-v1.3"))

    steps.run("model_get_by_name", get_by_name_http)
    steps.run("predict_versioned_url", lambda: predict_view(app.models.get("general-v1.3").predict_by_url(
        PHOTO_URL["cat"])))
    steps.run("model_get_logo", lambda: model_view(app.models.get("logo")))
    steps.run("model_search", lambda: [model_view(m) for m in app.models.search("general-v1.3") or []])
    steps.run("model_list_versions", lambda: [v["id"] for v in app.models.get(model_id=GENERAL).list_versions()
                                              .get("model_versions", [])])
    steps.run("model_get_info", lambda: app.models.get(model_id=GENERAL).get_info()["model"]["name"])
    steps.run("model_get_info_versioned", lambda: app.models.get("general-v1.3").get_info()["model"]["id"])
    steps.run("model_output_info_versioned", lambda: len(app.models.get("general-v1.3").get_info(
        verbose=True)["model"]["output_info"].get("data", {}).get("concepts", [])))

    # An app's own concept model (POST /v2/models), as 2.6.2 creates it; untrained, it refuses to predict.
    steps.run("custom_model_create", lambda: model_view(app.models.create(
        P + "pets", concepts=[P + "pet", P + "person"], concepts_mutually_exclusive=True)))
    steps.run("custom_model_get", lambda: model_view(app.models.get(model_id=P + "pets")))
    steps.run("custom_model_concepts", lambda: [c["id"] for c in app.models.get(model_id=P + "pets").get_info(
        verbose=True)["model"]["output_info"]["data"]["concepts"]])
    steps.run("custom_model_predict_untrained", lambda: refused(lambda: app.models.get(
        model_id=P + "pets").predict_by_base64(cat_b64)))

    general = app.public_models.general_model
    steps.run("predict_select_concepts", lambda: predict_view(general.predict_by_base64(
        cat_b64, select_concepts=[ClConcept(concept_name="tabby cat"), ClConcept(concept_name="dog"),
                                  ClConcept(concept_name="cat")])))
    steps.run("predict_max_concepts", lambda: predict_view(general.predict_by_base64(cat_b64, max_concepts=3)))
    steps.run("predict_min_value", lambda: predict_view(general.predict_by_base64(cat_b64, min_value=0.5)))

    face_model = app.public_models.face_detection_model
    steps.run("predict_face_b64", lambda: predict_view(face_model.predict_by_base64(face_b64)))
    steps.run("predict_face_by_name_url", lambda: predict_view(app.models.get("face-v1.3").predict_by_url(
        PHOTO_URL["face"])))

    # Search: three photos with concepts of this run, then every kind of query 2.6.2 builds.
    steps.run("search_inputs_create", lambda: [image_view(i) for i in app.inputs.bulk_create_images([
        ClImage(base64=cat_b64, image_id=P + "cat", concepts=[P + "pet"]),
        ClImage(base64=face_b64, image_id=P + "face", concepts=[P + "person"], not_concepts=[P + "pet"]),
        ClImage(url=PHOTO_URL["coffee"], image_id=P + "coffee", concepts=[P + "thing"]),
    ])])
    inputs = app.inputs
    # Place: two images 44 km apart in the South Pacific (GeoPoint takes the longitude first); the
    # small PNGs, so that no photo search below meets a copy of its photo
    steps.run("geo_create", lambda: [image_view(app.inputs.create_image_from_base64(
        b64, image_id=P + "geo-%d" % n, geo=Geo(geo_point=GeoPoint(lon, lat))))
        for n, (b64, lon, lat) in enumerate(((cfg["png_b64"].encode(), -130.0, -47.0),
                                             (cfg["png2_b64"].encode(), -130.5, -47.2)))])
    steps.run("geo_near", lambda: search_view(inputs.search_by_geo(
        geo_point=GeoPoint(-130.0, -47.0), geo_limit=GeoLimit("kilometer", 10), raw=True)))
    steps.run("geo_box", lambda: search_view(inputs.search_by_geo(
        geo_box=GeoBox(GeoPoint(-131, -48), GeoPoint(-129, -46)), raw=True)))
    steps.run("search_annotated", lambda: search_view(inputs.search_by_annotated_concepts(
        concepts=[P + "pet"], raw=True)))
    steps.run("search_annotated_objects", lambda: [{"id": i.input_id, "score": i.score} for i in
                                                   inputs.search_by_annotated_concepts(concept=P + "pet")])
    steps.run("search_predicted", lambda: search_view(inputs.search_by_predicted_concepts(
        concepts=["cat"], raw=True)))
    steps.run("search_image_url", lambda: search_view(inputs.search_by_image(url=PHOTO_URL["cat"], raw=True)))
    steps.run("search_image_base64", lambda: search_view(inputs.search_by_image(base64bytes=cat_b64, raw=True)))
    steps.run("search_image_bytes", lambda: search_view(inputs.search_by_image(imgbytes=PHOTO["face"], raw=True)))
    steps.run("search_image_id", lambda: search_view(inputs.search_by_image(image_id=P + "coffee", raw=True)))
    steps.run("search_image_objects", lambda: [{"id": i.input_id, "score": i.score} for i in
                                               inputs.search_by_image(image_id=P + "face")])
    # paging: the same query page by page
    steps.run("search_face_pages", lambda: [search_view(inputs.search_by_image(
        image_id=P + "face", page=page, per_page=2, raw=True)) for page in (1, 2, 3)])
    # four copies of one photo (no other run adds it) tie at score 1.0: one per page, the four
    # pages must still show each copy once
    rocket = PHOTO_B64["rocket"]
    steps.run("search_rocket_inputs", lambda: [i.input_id for i in app.inputs.bulk_create_images(
        [ClImage(base64=rocket, image_id=P + "rocket-%d" % n) for n in range(4)])])
    steps.run("search_rocket_full", lambda: search_view(inputs.search_by_image(base64bytes=rocket, raw=True)))
    steps.run("search_rocket_pages", lambda: [search_view(inputs.search_by_image(
        base64bytes=rocket, page=page, per_page=1, raw=True)) for page in (1, 2, 3, 4)])


def init_from_env():
    os.environ["CLARIFAI_API_BASE"] = cfg["base_url"]
    try:
        other = ClarifaiApp(api_key=cfg["key"])
    finally:
        del os.environ["CLARIFAI_API_BASE"]
    return {"basev2": other.api.basev2, "models_cached": len(other.models.model_id_cache)}


steps.run("init_env_base", init_from_env)

if app is not None:
    steps.run("basev2", lambda: app.api.basev2)
    steps.run("models_cached", lambda: len(app.models.model_id_cache))

    steps.run("create_base64", lambda: image_view(app.inputs.create_image_from_base64(
        cfg["png_b64"].encode(), image_id=P + "b64", concepts=[P + "red"], not_concepts=[P + "blue"])))
    steps.run("create_bytes", lambda: image_view(app.inputs.create_image_from_bytes(
        base64.b64decode(cfg["png2_b64"]), image_id=P + "bytes", concepts=[P + "blue"])))
    steps.run("create_url", lambda: image_view(app.inputs.create_image_from_url(
        cfg["image_url"], image_id=P + "url", concepts=[P + "green"], not_concepts=[P + "red"])))
    steps.run("bulk_create", lambda: [image_view(i) for i in app.inputs.bulk_create_images([
        ClImage(base64=cfg["png_b64"].encode(), image_id=P + "bulk1", concepts=[P + "red"]),
        ClImage(base64=cfg["png2_b64"].encode(), image_id=P + "bulk2", not_concepts=[P + "red"]),
    ])])

    steps.run("get_base64", lambda: image_view(app.inputs.get(P + "b64")))
    steps.run("get_url", lambda: image_view(app.inputs.get(P + "url")))
    steps.run("merge_concepts", lambda: image_view(app.inputs.merge_concepts(P + "b64", [P + "extra"], [])))
    run_input_regions()

    steps.run("concept_create", lambda: concept_view(app.concepts.create(P + "concept", "Pyclient Alpha")))
    steps.run("concept_bulk_create", lambda: [concept_view(c) for c in app.concepts.bulk_create(
        [P + "many%02d" % i for i in range(25)], ["Pyclient Many %02d" % i for i in range(25)])])
    steps.run("concept_get", lambda: concept_view(app.concepts.get(P + "concept")))
    # get_all and search page with per_page=20 until a page is empty: > 20 concepts exist here.
    steps.run("concept_get_all", lambda: [c.concept_id for c in take(app.concepts.get_all())])
    steps.run("concept_search", lambda: [c.concept_id for c in take(app.concepts.search("pyclient alpha*"))])
    steps.run("concept_search_many", lambda: [c.concept_id for c in take(app.concepts.search("Pyclient Many*"))])
    steps.run("concept_update", lambda: concept_view(app.concepts.update(P + "concept", "Pyclient Renamed")))
    steps.run("concept_get_renamed", lambda: concept_view(app.concepts.get(P + "concept")))

    steps.run("inputs_get_all", lambda: [i.input_id for i in take(app.inputs.get_all())])
    steps.run("inputs_status", lambda: vars(app.inputs.check_status()))

    def delete_then_get():
        status = app.inputs.delete(P + "bytes")
        try:
            app.inputs.get(P + "bytes")
        except ApiError as exc:
            return {"delete_code": status.code, "get_http_status": exc.response.status_code,
                    "get_code": exc.error_code}
        return {"delete_code": status.code, "get_http_status": 200, "get_code": None}

    steps.run("delete", delete_then_get)
    steps.run("delete_many", lambda: app.inputs.delete([P + "bulk1", P + "bulk2"]).code)
    steps.run("inputs_after_delete", lambda: [i.input_id for i in take(app.inputs.get_all())])

    run_models_predict_search()
    run_feedback()

steps.emit()
