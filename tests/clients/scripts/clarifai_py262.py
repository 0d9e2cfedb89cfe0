"""Drive the Python ``clarifai`` 2.6.2 client (``clarifai.rest.ClarifaiApp``) against a live server.

Config (JSON on stdin): base_url, key, prefix, png_b64, png2_b64, image_url.
Pointing 2.6.2 at a server: ``ClarifaiApp(api_key=..., base_url="http://host:port")`` (the
scheme is kept; without one it assumes https), or the ``CLARIFAI_API_BASE`` environment
variable, read when the ApiClient is built. Either way it calls ``<base>/v2/...``.
"""

import base64
import os

from steps import Steps, read_config, take

from clarifai.rest import ApiError, ClarifaiApp
from clarifai.rest import Image as ClImage

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

steps.emit()
