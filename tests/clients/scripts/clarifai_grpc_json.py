"""Drive ``clarifai-grpc`` 12.6.0 through its JSON channel against a live server.

Config (JSON on stdin): base_url, key, prefix, png_b64, image_url, scoped (bool), app_id; photos
(name -> path of a JPEG: cat, face, coffee) and photo_urls (the same on the loopback image host).
Pointing 12.6.0 at a server: ``ClarifaiChannel.get_json_channel(base_url="http://host:port")``;
the base is used verbatim (no https is forced), and every RPC's URL is ``base_url`` + the path
of its google.api.http binding. The default of ``base_url`` is ``CLARIFAI_API_BASE``, read when
the module is *imported*. Without ``user_app_id`` the channel takes the binding that fills the
most path fields, with ``user_id`` defaulting to "me": for ListModels that is
``/v2/users/me/models`` (user-scoped), not ``/v2/models``.
"""

import base64

from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel
from clarifai_grpc.channel.http_client import HttpClient
from clarifai_grpc.grpc.api import resources_pb2, service_pb2, service_pb2_grpc
from clarifai_grpc.grpc.api.status import status_code_pb2
from steps import Steps, read_config

cfg = read_config()
P = cfg["prefix"]
steps = Steps()
metadata = (("authorization", "Key " + cfg["key"]),)
scope = {}
if cfg["scoped"]:
    scope["user_app_id"] = resources_pb2.UserAppIDSet(user_id="me", app_id=cfg["app_id"])

channel = steps.obtain("channel", lambda: ClarifaiChannel.get_json_channel(base_url=cfg["base_url"]))
stub = service_pb2_grpc.V2Stub(channel) if channel is not None else None
SUCCESS = status_code_pb2.SUCCESS
GENERAL, GENERAL_VERSION = "aaa03c23b3724a16a56b629203edc62c", "aa9ca48295b37401f8af92ad1af0d91d"
FACE = "a403429f2ddf4b49b307e318f00e528b"
PHOTO = {name: open(path, "rb").read() for name, path in cfg.get("photos", {}).items()}
PHOTO_URL = cfg.get("photo_urls", {})


def status_view(status):
    return {"code": status.code, "name": status_code_pb2.StatusCode.Name(status.code)
            if status.code in status_code_pb2.StatusCode.values() else str(status.code),
            "description": status.description, "details": status.details}


def concept_view(c):
    return {"id": c.id, "name": c.name, "value": c.value}


def input_view(i):
    return {"id": i.id, "concepts": [concept_view(c) for c in i.data.concepts],
            "url": i.data.image.url, "has_base64": bool(i.data.image.base64),
            "status": i.status.code}


def call(rpc, request_cls, **fields):
    """One RPC; a non-SUCCESS status is an error with the server's description."""
    response = getattr(stub, rpc)(request_cls(**scope, **fields), metadata=metadata)
    if response.status.code != SUCCESS:
        raise RuntimeError("%s -> %r" % (rpc, status_view(response.status)))
    return response


def pages(rpc, request_cls, field, per_page=20, limit=50):
    """Page through a list RPC until an empty page."""
    out = []
    for page in range(1, limit + 1):
        items = list(getattr(call(rpc, request_cls, page=page, per_page=per_page), field))
        if not items:
            return out
        out.extend(items)
    raise RuntimeError("%s paging did not end after %d pages" % (rpc, limit))


def post_inputs():
    png = base64.b64decode(cfg["png_b64"])
    r = call("PostInputs", service_pb2.PostInputsRequest, inputs=[
        resources_pb2.Input(id=P + "red", data=resources_pb2.Data(
            image=resources_pb2.Image(base64=png),
            concepts=[resources_pb2.Concept(id=P + "color", value=1.0),
                      resources_pb2.Concept(id=P + "not-color", value=0.0)])),
        resources_pb2.Input(id=P + "url", data=resources_pb2.Data(
            image=resources_pb2.Image(url=cfg["image_url"]),
            concepts=[resources_pb2.Concept(id=P + "color", value=1.0)])),
    ])
    return [input_view(i) for i in r.inputs]


def input_regions():
    """An input posted with regions (protobuf Region/RegionInfo/BoundingBox), read back, then deleted
    so that the listings and searches below stay as they were."""
    png = base64.b64decode(cfg["png_b64"])
    logo = P + "logo"
    box = resources_pb2.BoundingBox
    call("PostInputs", service_pb2.PostInputsRequest, inputs=[resources_pb2.Input(
        id=P + "regions", data=resources_pb2.Data(image=resources_pb2.Image(base64=png), regions=[
            resources_pb2.Region(id="r1", region_info=resources_pb2.RegionInfo(bounding_box=box(
                top_row=0.1, left_col=0.2, bottom_row=0.5, right_col=0.6)),
                data=resources_pb2.Data(concepts=[resources_pb2.Concept(id=logo, value=1.0)])),
            resources_pb2.Region(region_info=resources_pb2.RegionInfo(bounding_box=box(bottom_row=0.3, right_col=0.3)),
                                 data=resources_pb2.Data(concepts=[resources_pb2.Concept(id=logo, value=0.0)])),
        ]))])
    got = call("GetInput", service_pb2.GetInputRequest, input_id=P + "regions").input
    call("DeleteInput", service_pb2.DeleteInputRequest, input_id=P + "regions")
    return [{"id": r.id, "box": box_view(r.region_info.bounding_box),
             "concepts": [(c.id, c.value) for c in r.data.concepts]} for r in got.data.regions]


def missing_input():
    r = stub.GetInput(service_pb2.GetInputRequest(input_id=P + "missing", **scope), metadata=metadata)
    return status_view(r.status)


def model_view(m):
    return {"id": m.id, "name": m.name, "version": m.model_version.id,
            "version_status": m.model_version.status.code, "type": m.model_type_id or m.output_info.type}


def box_view(b):
    return {"top_row": b.top_row, "left_col": b.left_col, "bottom_row": b.bottom_row, "right_col": b.right_col}


def output_view(o):
    return {"id": o.id, "status": o.status.code, "model_id": o.model.id, "version_id": o.model.model_version.id,
            "input_id": o.input.id, "concepts": [concept_view(c) for c in o.data.concepts],
            "regions": [{"id": r.id, "value": r.value, "box": box_view(r.region_info.bounding_box),
                         "concepts": [concept_view(c) for c in r.data.concepts]} for r in o.data.regions]}


def predict(model_id, image, version_id=None, output_config=None):
    fields = {"model_id": model_id, "inputs": [resources_pb2.Input(data=resources_pb2.Data(image=image))]}
    if version_id:
        fields["version_id"] = version_id
    if output_config is not None:
        fields["model"] = resources_pb2.Model(output_info=resources_pb2.OutputInfo(output_config=output_config))
    r = call("PostModelOutputs", service_pb2.PostModelOutputsRequest, **fields)
    return {"status": r.status.code, "outputs": [output_view(o) for o in r.outputs]}


def search_view(r):
    return {"id": r.id, "status": r.status.code, "hits": [{"id": h.input.id, "score": h.score} for h in r.hits]}


def search(term):
    return search_view(call("PostSearches", service_pb2.PostSearchesRequest,
                            query=resources_pb2.Query(ands=[term]),
                            pagination=service_pb2.Pagination(page=1, per_page=20)))


def post_photo_inputs():
    r = call("PostInputs", service_pb2.PostInputsRequest, inputs=[
        resources_pb2.Input(id=P + "cat", data=resources_pb2.Data(
            image=resources_pb2.Image(base64=PHOTO["cat"]),
            concepts=[resources_pb2.Concept(id=P + "pet", value=1.0)])),
        resources_pb2.Input(id=P + "face", data=resources_pb2.Data(
            image=resources_pb2.Image(base64=PHOTO["face"]),
            concepts=[resources_pb2.Concept(id=P + "person", value=1.0),
                      resources_pb2.Concept(id=P + "pet", value=0.0)])),
        resources_pb2.Input(id=P + "coffee", data=resources_pb2.Data(
            image=resources_pb2.Image(url=PHOTO_URL["coffee"]))),
    ])
    return [i.id for i in r.inputs]


def prior(name):
    got = steps.results.get(name)
    if not got or not got["ok"]:
        raise RuntimeError("needs step %r, which failed" % name)
    return got["value"]


def post_feedback(path, body):
    """clarifai-grpc has no feedback RPC: POST the JSON with the channel's own HTTP client (its
    requests session and headers); the path is app-scoped like the RPCs' when user_app_id is set."""
    base = cfg["base_url"] + ("/v2/users/me/apps/%s" % cfg["app_id"] if cfg["scoped"] else "/v2")
    return HttpClient(channel.session, cfg["key"]).execute_request("POST", body, base + path)["status"]


def run_feedback():
    info = {"end_user_id": P + "user", "session_id": P + "session"}

    def concepts():
        out = prior("predict_base64")["outputs"][0]
        return post_feedback("/models/%s/feedback" % GENERAL, {"input": {
            "id": P + "cat", "data": {"image": {"url": PHOTO_URL["cat"]},
                                      "concepts": [{"id": "cat", "value": True}, {"id": "dog", "value": False}]},
            "feedback_info": dict(info, event_type="annotation", output_id=out["id"])}})

    def concepts_version():
        out = prior("predict_version")["outputs"][0]
        return post_feedback("/models/%s/versions/%s/feedback" % (GENERAL, GENERAL_VERSION), {"input": {
            "id": P + "cat", "data": {"concepts": [{"name": "tabby cat", "value": 1.0}]},
            "feedback_info": dict(info, event_type="annotation", output_id=out["id"])}})

    def regions():
        out = prior("predict_face")["outputs"][0]
        predicted = out["regions"][0]
        face = [{"id": "face", "value": True}]
        return post_feedback("/models/%s/feedback" % FACE, {"input": {
            "id": P + "face", "data": {"regions": [
                {"id": predicted["id"], "region_info": {"feedback": "accurate"}, "data": {"concepts": face}},
                {"region_info": {"bounding_box": {"top_row": 0.6, "left_col": 0.1, "bottom_row": 0.7, "right_col": 0.2},
                                 "feedback": "not_detected"}, "data": {"concepts": face}},
            ]},
            "feedback_info": dict(info, event_type="annotation", output_id=out["id"])}})

    def search_click():
        return post_feedback("/searches/feedback", {"input": {
            "id": P + "cat", "feedback_info": dict(info, event_type="search_click",
                                                   search_id=prior("search_image_base64")["id"])}})

    steps.run("feedback_concepts", concepts)
    steps.run("feedback_concepts_version", concepts_version)
    steps.run("feedback_regions", regions)
    steps.run("feedback_search", search_click)


def run_models_predict_search():
    """GetModel (by id and by name), ListModelVersions, PostModelsSearches, PostModelOutputs
    (base64, URL, with a version, output_config, face detection), and PostSearches by annotated
    concept, predicted concept, image base64 and input id."""
    steps.run("get_model", lambda: model_view(call("GetModel", service_pb2.GetModelRequest, model_id=GENERAL).model))
    steps.run("get_model_by_name", lambda: model_view(call("GetModel", service_pb2.GetModelRequest,
                                                           model_id="general-v1.3").model))
    steps.run("list_model_versions", lambda: [v.id for v in call(
        "ListModelVersions", service_pb2.ListModelVersionsRequest, model_id=GENERAL).model_versions])
    steps.run("models_search_name", lambda: [model_view(m) for m in call(
        "PostModelsSearches", service_pb2.PostModelsSearchesRequest,
        model_query=resources_pb2.ModelQuery(name="general-v1.3")).models])
    steps.run("models_search_type", lambda: [m.id for m in call(
        "PostModelsSearches", service_pb2.PostModelsSearchesRequest,
        model_query=resources_pb2.ModelQuery(model_type_id="facedetect")).models])

    steps.run("predict_base64", lambda: predict(GENERAL, resources_pb2.Image(base64=PHOTO["cat"])))
    steps.run("predict_url", lambda: predict(GENERAL, resources_pb2.Image(url=PHOTO_URL["cat"])))
    steps.run("predict_version", lambda: predict(GENERAL, resources_pb2.Image(base64=PHOTO["cat"]),
                                                 version_id=GENERAL_VERSION))
    steps.run("predict_max_concepts", lambda: predict(GENERAL, resources_pb2.Image(base64=PHOTO["cat"]),
                                                      output_config=resources_pb2.OutputConfig(max_concepts=3)))
    steps.run("predict_select_concepts", lambda: predict(
        GENERAL, resources_pb2.Image(base64=PHOTO["cat"]), output_config=resources_pb2.OutputConfig(
            select_concepts=[resources_pb2.Concept(name="tabby cat"), resources_pb2.Concept(name="dog")])))
    steps.run("predict_face", lambda: predict(FACE, resources_pb2.Image(base64=PHOTO["face"])))

    steps.run("post_photo_inputs", post_photo_inputs)
    And, Input, Output, Data = resources_pb2.And, resources_pb2.Input, resources_pb2.Output, resources_pb2.Data
    steps.run("search_annotated", lambda: search(And(input=Input(data=Data(
        concepts=[resources_pb2.Concept(id=P + "pet", value=1.0)])))))
    steps.run("search_predicted", lambda: search(And(output=Output(data=Data(
        concepts=[resources_pb2.Concept(name="cat", value=1.0)])))))
    steps.run("search_image_base64", lambda: search(And(output=Output(input=Input(data=Data(
        image=resources_pb2.Image(base64=PHOTO["cat"])))))))
    steps.run("search_input_id", lambda: search(And(output=Output(input=Input(id=P + "coffee")))))


if stub is not None:
    steps.run("post_inputs", post_inputs)
    steps.run("get_input", lambda: input_view(call("GetInput", service_pb2.GetInputRequest,
                                                   input_id=P + "red").input))
    steps.run("input_regions", input_regions)
    steps.run("get_missing_input", missing_input)
    steps.run("list_inputs", lambda: [i.id for i in pages("ListInputs", service_pb2.ListInputsRequest,
                                                          "inputs")])
    steps.run("post_concepts", lambda: [concept_view(c) for c in call(
        "PostConcepts", service_pb2.PostConceptsRequest,
        concepts=[resources_pb2.Concept(id=P + "concept", name="Grpc Concept " + P)]).concepts])
    steps.run("get_concept", lambda: concept_view(call("GetConcept", service_pb2.GetConceptRequest,
                                                       concept_id=P + "concept").concept))
    steps.run("list_concepts", lambda: [c.id for c in pages("ListConcepts", service_pb2.ListConceptsRequest,
                                                            "concepts")])
    steps.run("list_concepts_small_pages", lambda: [c.id for c in pages(
        "ListConcepts", service_pb2.ListConceptsRequest, "concepts", per_page=2)])
    steps.run("search_concepts", lambda: [c.id for c in call(
        "PostConceptsSearches", service_pb2.PostConceptsSearchesRequest,
        concept_query=resources_pb2.ConceptQuery(name="grpc concept " + P + "*")).concepts])
    steps.run("patch_concepts", lambda: [concept_view(c) for c in call(
        "PatchConcepts", service_pb2.PatchConceptsRequest, action="overwrite",
        concepts=[resources_pb2.Concept(id=P + "concept", name="Renamed " + P)]).concepts])
    steps.run("list_models", lambda: len(call("ListModels", service_pb2.ListModelsRequest,
                                              page=1, per_page=20).models))
    run_models_predict_search()
    run_feedback()

steps.emit()
