"""Drive ``clarifai-grpc`` 12.6.0 through its JSON channel against a live server.

Config (JSON on stdin): base_url, key, prefix, png_b64, image_url, scoped (bool), app_id.
Pointing 12.6.0 at a server: ``ClarifaiChannel.get_json_channel(base_url="http://host:port")``;
the base is used verbatim (no https is forced), and every RPC's URL is ``base_url`` + the path
of its google.api.http binding. The default of ``base_url`` is ``CLARIFAI_API_BASE``, read when
the module is *imported*. Without ``user_app_id`` the channel takes the binding that fills the
most path fields, with ``user_id`` defaulting to "me": for ListModels that is
``/v2/users/me/models`` (user-scoped), not ``/v2/models``.
"""

import base64

from steps import Steps, read_config

from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel
from clarifai_grpc.grpc.api import resources_pb2, service_pb2, service_pb2_grpc
from clarifai_grpc.grpc.api.status import status_code_pb2

cfg = read_config()
P = cfg["prefix"]
steps = Steps()
metadata = (("authorization", "Key " + cfg["key"]),)
scope = {}
if cfg["scoped"]:
    scope["user_app_id"] = resources_pb2.UserAppIDSet(user_id="me", app_id=cfg["app_id"])

stub = steps.obtain("channel", lambda: service_pb2_grpc.V2Stub(
    ClarifaiChannel.get_json_channel(base_url=cfg["base_url"])))
SUCCESS = status_code_pb2.SUCCESS


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


def missing_input():
    r = stub.GetInput(service_pb2.GetInputRequest(input_id=P + "missing", **scope), metadata=metadata)
    return status_view(r.status)


if stub is not None:
    steps.run("post_inputs", post_inputs)
    steps.run("get_input", lambda: input_view(call("GetInput", service_pb2.GetInputRequest,
                                                   input_id=P + "red").input))
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

steps.emit()
