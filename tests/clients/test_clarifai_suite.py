"""Clarifai's own REST test suite (the clarifai 2.6.2 wheel's ``tests/rest_tests``), run unchanged.

Clarifai ran these tests against its production API; here they run against a live visionloop
server of their own (the suite's preparation step deletes every input and model of its app), with
the sample image URLs pointed at stand-in photos on a loopback image host. The whole suite runs
once (several minutes, so the SQLite pass only); then one test per module checks its outcome.

Every test outside ``KNOWN_FAILURES`` must pass, and at least ``TARGET`` of them in all.
docs/clarifai-test-suite.md gives the reason for each known failure.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.clients import venvs
from tests.clients.live import ImageHost, LiveServer, start_live_server
from tests.clients.photos import encode

pytestmark = [pytest.mark.clients, pytest.mark.slow, pytest.mark.timeout(1800)]

# video and workflow are left out (no video here; workflows are not served)
MODULES = ("test_api", "test_auth", "test_concepts", "test_feedback", "test_geo", "test_images",
           "test_models", "test_predict", "test_public_models", "test_search", "test_status",
           "test_v2_tagging")
TOTAL = 159
# Every test outside KNOWN_FAILURES passes (TOTAL - len(KNOWN_FAILURES)); a test that starts passing
# must be taken out of KNOWN_FAILURES, which raises this with it.
TARGET = 128

# sample_inputs constant -> (skimage.data photo, file name on the image host, PIL format). The
# formats are Clarifai's (a TIFF, a BMP, a PNG), so decoding them is exercised too.
URL_STAND_INS = {
    "METRO_IMAGE_URL": ("chelsea", "metro-north.jpg", "JPEG"),
    "WEDDING_IMAGE_URL": ("astronaut", "wedding.jpg", "JPEG"),
    "FACEBOOK_IMAGE_URL": ("coffee", "facebook.png", "PNG"),
    "DOG_TIFF_IMAGE_URL": ("chelsea", "dog.tiff", "TIFF"),
    "DOG2_IMAGE_URL": ("chelsea", "dog2.jpeg", "JPEG"),
    "PENGUIN_BMP_IMAGE_URL": ("camera", "penguin.bmp", "BMP"),
    "TODDLER_FLOWERS_IMAGE_URL": ("astronaut", "toddler-flowers.jpeg", "JPEG"),
}
FILE_STAND_INS = {
    "METRO_IMAGE_FILE_PATH": ("chelsea", "metro-north.jpg", "JPEG"),
    "TAHOE_IMAGE_FILE_PATH": ("hubble_deep_field", "tahoe.jpg", "JPEG"),
    "TODDLER_FLOWERS_IMAGE_FILE_PATH": ("astronaut", "toddler-flowers.jpeg", "JPEG"),
    "THAI_MARKET_IMAGE_FILE_PATH": ("coffee", "thai-market.jpg", "JPEG"),
}
MISSING_URL = "DOG2_NONEXISTENT_IMAGE_URL"  # must answer 404
PREPARE_URLS = ("METRO_IMAGE_URL", "WEDDING_IMAGE_URL", "FACEBOOK_IMAGE_URL", "DOG_TIFF_IMAGE_URL",
                "PENGUIN_BMP_IMAGE_URL")

# test id -> why it cannot pass here (docs/clarifai-test-suite.md says more)
_S3 = "asserts the stored image's URL is on Clarifai's S3 (https://s3.amazonaws.com/clarifai-api/img...)"
_RAILWAY = "asserts 'railway' among the concepts of Clarifai's photo of a train; no stand-in photo shows a train"
_VIDEO = "video input (is_video=True): no video here"
_PUBLIC = "a Clarifai public model with no offline weights (answers 21201 'Model not available offline')"
KNOWN_FAILURES: dict[str, str] = {
    "test_api.TestApiExceptions.test_429_throttling": "mocks *.clarifai.com/v2/concepts with `responses`; the "
                                                      "client talks to 127.0.0.1, so the mock never matches",
    "test_api.TestApiExceptions.test_bad_gateway_error": "the same mock of *.clarifai.com",
    "test_concepts.TestConcepts.test_get_concept": "reads Clarifai's concept id ai_vhvTrLRT ('affection')",
    "test_concepts.TestConcepts.test_search_concepts_with_zh_lang": "Chinese concept names: no offline source",
    "test_images.TestImages.test_base64_from_fileobj": _S3,
    "test_images.TestImages.test_base64_from_pil": _S3,
    "test_images.TestImages.test_post_images_base64": _S3,
    "test_images.TestImages.test_post_images_bytes": _S3,
    "test_images.TestImages.test_post_images_filename": _S3,
    "test_models.TestModels.test_model_name_cache": "needs a 'face' embedding model (no offline weights)",
    "test_models.TestModels.test_predict_with_i18n": "Clarifai's concept ids (ai_...) and names in zh, ja, ru",
    "test_models.TestModels.test_predict_with_model_id": _PUBLIC + ": travel",
    "test_predict.TestPredict.test_predict_image_url": _RAILWAY,
    "test_predict.TestPredict.test_predict_image_by_filename": _RAILWAY,
    "test_predict.TestPredict.test_predict_image_by_bytes": _RAILWAY,
    "test_predict.TestPredict.test_predict_image_by_base64": _RAILWAY,
    "test_predict.TestPredict.test_predict_image_url_select_concepts": "selects 'beer' (not an ImageNet concept) "
                                                                       "and Clarifai's ids ai_...",
    "test_predict.TestPredict.test_predict_video_url": _VIDEO,
    "test_predict.TestPredict.test_predict_video_url_min_value": _VIDEO,
    "test_predict.TestPredict.test_predict_video_url_max_concepts": _VIDEO,
    "test_predict.TestPredict.test_predict_video_url_min_value_max_concepts": _VIDEO,
    **{f"test_public_models.TestPublicModels.test_predict_with_{name}": f"{_PUBLIC}: {name}" for name in (
        "celebrity_model", "demographics_mode", "face_embedding_model", "landscape_quality_model",
        "moderation_model", "portrait_model", "textures_and_patterns_model", "travel_model", "wedding_model")},
    "test_v2_tagging.TestV2Tagging.test_tag_urls_with_model_id": _PUBLIC + ": travel",
}
# The suite's preparation trains a model on two images; visionloop learns a concept from at least
# five positive and five negative images, so the version ends 'insufficient data' and prepare.py
# exits 2 (after DELETE /v2/models, the inputs and the model were made). Nothing else depends on it.
PREPARE_KNOWN_FAILURE = "SystemExit: 2"


@pytest.fixture(scope="module")
def suite_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_live_server(tmp_path_factory.mktemp("clarifai-suite"), app_id="clarifai-suite")
    try:
        yield server
    finally:
        server.stop()


def _samples(host: ImageHost, folder: Path) -> dict[str, str]:
    encoded: dict[tuple[str, str], bytes] = {}

    def data(source: str, fmt: str) -> bytes:
        if (source, fmt) not in encoded:
            encoded[source, fmt] = encode(source, fmt)
        return encoded[source, fmt]

    samples = {}
    for const, (source, name, fmt) in URL_STAND_INS.items():
        samples[const] = host.add(f"/suite/{name}", data(source, fmt), f"image/{fmt.lower()}")
    for const, (source, name, fmt) in FILE_STAND_INS.items():
        path = folder / name
        path.write_bytes(data(source, fmt))
        samples[const] = str(path)
    samples[MISSING_URL] = f"{host.base_url}/suite/dog2_bad.jpeg"
    return samples


@pytest.fixture(scope="module")
def report(suite_server: LiveServer, image_host: ImageHost, client_home: Path,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        samples = _samples(image_host, tmp_path_factory.mktemp("suite-files"))
    except ImportError as exc:
        venvs.skip_or_fail(f"scikit-image is needed for the stand-in photos: {exc}")
    try:
        python = venvs.python_client(venvs.CLARIFAI_PY_SUITE)
    except venvs.Unavailable as exc:
        venvs.skip_or_fail(f"client environment unavailable: {exc}")
    config = {"modules": list(MODULES), "samples": samples,
              "prepare_urls": [samples[name] for name in PREPARE_URLS]}
    env = venvs.client_env(client_home, CLARIFAI_API_KEY=suite_server.key,
                           CLARIFAI_API_BASE=suite_server.base_url)
    result = venvs.run_json([str(python), str(venvs.SCRIPTS / "clarifai_rest_suite.py")], config, env,
                            timeout=1500)
    # a test that never reported (its class's setUpClass failed) counts as an error
    for tid in result["collected"]:
        result["tests"].setdefault(tid, {"outcome": "error", "message": "did not run (setUpClass failed)"})
    result["server_log"] = suite_server.log_tail(40)  # a server that died explains many failures at once
    # the whole report, for reading the failures one by one
    (suite_server.data_dir.parent / "report.json").write_text(json.dumps(result, indent=1))
    return result


def _outcomes(report: dict[str, Any], module: str) -> dict[str, dict[str, Any]]:
    return {tid: r for tid, r in report["tests"].items() if tid.split(".")[0] == module}


def _summary(report: dict[str, Any]) -> str:
    lines = []
    for module in MODULES:
        counts = Counter(r["outcome"] for r in _outcomes(report, module).values())
        lines.append(f"{module:20} {counts['pass']:3} of {sum(counts.values()):3} pass")
    return "\n".join(lines)


def test_the_suites_preparation_step_runs(report: dict[str, Any]) -> None:
    prepare = report["prepare"]
    assert prepare["ok"] or prepare["message"] == PREPARE_KNOWN_FAILURE, prepare


@pytest.mark.parametrize("module", MODULES)
def test_module_passes_except_its_known_failures(report: dict[str, Any], module: str) -> None:
    assert module not in report["load_errors"], report["load_errors"][module]
    outcomes = _outcomes(report, module)
    assert outcomes, f"{module} ran no test"
    broken = {tid: r for tid, r in outcomes.items() if r["outcome"] != "pass" and tid not in KNOWN_FAILURES}
    assert not broken, "\n\n".join([*(f"{tid}: {r['outcome']}\n{r['message']}" for tid, r in broken.items()),
                                     f"--- server log tail ---\n{report['server_log']}"])


def test_the_suite_passes_at_least_the_target(report: dict[str, Any]) -> None:
    assert len(report["tests"]) == TOTAL, sorted(report["tests"])
    passed = sum(r["outcome"] == "pass" for r in report["tests"].values())
    assert passed >= TARGET, f"{passed} of {TOTAL} pass, fewer than {TARGET}:\n{_summary(report)}"
