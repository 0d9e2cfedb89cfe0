"""Drive ``app.public_models.*`` of the Python ``clarifai`` 2.6.2 client against a live server.

Config (JSON on stdin): base_url, key, photo_urls (name -> URL of a JPEG on the loopback host).
Every model the client's ``PublicModels`` holds is predicted on by URL; the step records what the
client got back (its parsed response) or its error (HTTP status and body).
"""

from clarifai.rest import ClarifaiApp
from clarifai.rest import Image as ClImage
from steps import Steps, read_config

cfg = read_config()
steps = Steps()
app = steps.obtain("init", lambda: ClarifaiApp(api_key=cfg["key"], base_url=cfg["base_url"]))
URL = cfg["photo_urls"]


def view(res):
    out = res["outputs"][0]
    data = out.get("data", {})
    return {"status": res["status"]["code"], "model_id": out["model"]["id"], "model_name": out["model"]["name"],
            "type": out["model"]["output_info"]["type"],
            "concepts": {c["name"]: c["value"] for c in data.get("concepts", [])},
            "colors": data.get("colors", []), "focus": data.get("focus"),
            "regions": [r.get("data", {}) for r in data.get("regions", [])]}


if app is not None:
    names = sorted(n for n in vars(app.public_models) if n.endswith("_model"))
    steps.run("names", lambda: names)
    for name in names:
        model = getattr(app.public_models, name)
        steps.run(name, lambda m=model: view(m.predict_by_url(URL["coffee"])))
    steps.run("nsfw_by_name", lambda: view(app.models.get("nsfw-v1.0").predict_by_url(URL["face"])))
    steps.run("predict_colors", lambda: view(app.api.predict_colors([ClImage(url=URL["cat"])])))
    steps.run("focus_search", lambda: [m.model_id for m in app.models.search("*", "focus")])
steps.emit()
