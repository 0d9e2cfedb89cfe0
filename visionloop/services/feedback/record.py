"""Check parsed feedback against what it refers to, normalise it, and append it to the log.

Codes (every refusal stores nothing):

==============================================  =====  ====  =========================================
what                                            code   HTTP  error class
==============================================  =====  ====  =========================================
body not JSON / not an object                   11100  400   BadRequestFormat
a field missing, of the wrong type, out of      11102  400   InvalidRequest (details name the field)
range, unknown enum value, empty list, wrong
event_type; output of another model/version;
unknown or repeated region id
unknown model or version                        21200  404   ModelNotFound
embedding model; only concepts sent about a     21202  400   ModelInvalid
detection model's output, only regions about
a concept model's output
output_id / search_id unknown in the app,       11101  404   ResourceNotFound (another app's ids are
with VISIONLOOP_FEEDBACK_REQUIRE_LINK on                         unknown too: nothing leaks)
input.id neither the output's input nor a       30104  400   InputInvalid
stored input with the output's image
clicked input not among the search's hits       30102  404   InputNotFound
too many requests                               11005  429   Throttled (:mod:`visionloop.services.ratelimit`)
==============================================  =====  ====  =========================================

**Unlinked feedback.** Clarifai accepted feedback whose output or search it did not know (its own
client tests send ``output_id: "oooooooid"``), so by default such feedback is stored too, marked
``"unlinked": {"output_id" | "search_id", "input_id"}`` (the ids as named) and with no output or
search: nothing about it can be checked against a prediction, so it is stored as said. Its image
is what can be resolved without fetching: a stored input the body names (a URL also sent is only
recorded), else base64 bytes by their digest; a URL alone is recorded and names no image. Learning
reads its concepts only when that image is known (``digest``); region learning and metrics read
linked outputs only, and count unlinked events apart. The setting ``feedback_require_link``
restores the refusal (11101).

The stored event carries ``body = {"normalized": ..., "raw": ...}``. ``raw`` is the request body
as sent (an image's base64 replaced by its length and SHA-256). ``normalized`` is what learning
reads (typed as :class:`~visionloop.learning.vocabulary.NormalizedEvent`)::

    concept feedback: {"kind": "concepts", "model_id", "version_id", "output_id", "input_id",
                       "digest" (the output's image, in the blob store),
                       "image": {"url"} | {"base64_sha256"} | null,
                       "concepts": [{"id", "name", "value": 1.0 | 0.0, "source": "model"|"app"|"new"}]}
    region feedback:  {"kind": "regions", ... as above (with "concepts" too when the body had both),
                       "regions": [{"feedback", "box": [top, left, bottom, right], "region_id" (the
                       predicted region tied to, or null), "matched_by": "id"|"iou"|null, "iou",
                       "concepts": [...], "face": {attribute: [{"id", "name", "value"}]}}]}
    search click:     {"kind": "search_click", "search_id", "input_id", "rank" (1-based), "score",
                       "digest" (the image the hit showed; null for searches before migration 0013)}

``body_hash`` is the SHA-256 of what was said (resolved concept ids and values, regions),
about what (app, output or search, model, version, input) and by whom (end user, session): two
requests with the same hash within the dedup window are one event (see :mod:`.log`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Connection, bindparam, select

from visionloop import errors
from visionloop.inference.catalog import CONCEPT, DETECTION, EMBEDDING
from visionloop.learning.vocabulary import EventKind, NormalizedConcept, NormalizedEvent, NormalizedRegion
from visionloop.services.apps import Caller
from visionloop.services.feedback.concepts import NEW, ConceptResolver, Resolved
from visionloop.services.feedback.log import Appended, FeedbackLog, NewEvent
from visionloop.services.feedback.parse import ConceptIn, ModelFeedbackIn, SearchFeedbackIn
from visionloop.services.feedback.regions import Predicted, match_regions, predicted_regions
from visionloop.services.images import decode_base64
from visionloop.services.models import ModelService, ModelView
from visionloop.store.blobs import digest_of
from visionloop.store.db import Database
from visionloop.store.prepared import Prepared
from visionloop.store.tables import Input, Model, ModelVersion, Output, Search, SearchHit

INFO = "input.feedback_info"

# Run per feedback request, so compiled once (visionloop/store/prepared.py); plain columns, no ORM.
_OUTPUT_COLUMNS = select(Output.id, Output.app_id, Output.model_pk, Output.version_id, Output.input_id,
                         Output.digest).where(Output.id == bindparam("id"))
_OUTPUT = Prepared(_OUTPUT_COLUMNS)
_OUTPUT_WITH_RESULT = Prepared(_OUTPUT_COLUMNS.add_columns(Output.result))
_SEARCH = Prepared(select(Search.app_id, Search.kind).where(Search.id == bindparam("id")))
_HIT = Prepared(select(SearchHit.rank, SearchHit.score, SearchHit.digest)
                .where(SearchHit.search_id == bindparam("search_id"), SearchHit.input_id == bindparam("input_id"))
                .order_by(SearchHit.rank).limit(1))
_INPUT_DIGEST = Prepared(select(Input.digest).where(Input.app_id == bindparam("app_id"), Input.id == bindparam("id")))
MAX_RAW_BYTES = 1024 * 1024  # a feedback body, without its image, is small; a larger one is refused


def body_hash(statement: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def redact(body: Any) -> Any:
    """The body to store: as sent, but an image's base64 becomes its length and SHA-256."""
    try:
        image = body["input"]["data"]["image"]
        b64 = image["base64"]
    except (KeyError, TypeError):
        return body
    if not isinstance(b64, str):
        return body
    digest = hashlib.sha256(b64.encode()).hexdigest()
    image = {**image, "base64": {"omitted_chars": len(b64), "sha256_of_text": digest}}
    data = {**body["input"]["data"], "image": image}
    return {**body, "input": {**body["input"], "data": data}}


def raw_body(body: Any) -> Any:
    """The body as it will be stored; checked for size before anything else reads it."""
    raw = redact(body)  # bodies are strict JSON (no NaN/Infinity): see visionloop/http/strict_json.py
    size = len(json.dumps(raw))
    if size > MAX_RAW_BYTES:
        raise errors.InvalidRequest(f"body: a feedback body is at most {MAX_RAW_BYTES} bytes without its image, "
                                    f"got {size}")
    return raw


class FeedbackRecorder:
    def __init__(self, db: Database, models: ModelService, log: FeedbackLog, *, require_link: bool = False) -> None:
        self.db = db
        self.models = models
        self.log = log
        self.require_link = require_link
        self.concepts = ConceptResolver(models)

    # -- prediction feedback ------------------------------------------------------------------
    def record_model(self, caller: Caller, model_ref: str, version_id: str | None, fb: ModelFeedbackIn,
                     raw: Any) -> Appended:
        view = self.models.get(caller.app_id, model_ref)
        version = self.models.version(caller.app_id, view.model, version_id) if version_id else None
        self._check_embedding(view)
        named_output = fb.info.output_id or ""
        with self.db.reading() as s:  # every read of the checks on one connection
            output = self._output(s, caller.app_id, view, version, named_output, bool(fb.regions))
            if output is not None:
                self._check_kind(view, fb)
                input_id = self._input_id(s, caller.app_id, fb.input_id, output)
                image, digest = self._image(fb, output), output.digest
                output_id, used_version = output.id, output.version_id
                predicted = predicted_regions(output.result or {}) if fb.regions else []
            else:
                input_id, digest, image = self._unlinked_image(s, caller.app_id, fb)
                output_id, used_version, predicted = None, (version or view.version).id, []
            normalized: NormalizedEvent = {"kind": fb.kind, "model_id": view.model.id, "version_id": used_version,
                                          "output_id": output_id, "input_id": input_id, "digest": digest,
                                          "image": image}
            if output is None:
                normalized["unlinked"] = {"output_id": named_output, "input_id": fb.input_id}
            resolved = self.concepts.resolve(s, caller.app_id, view, fb.concepts)
            said: dict[str, Any] = {}
            if fb.concepts:
                normalized["concepts"] = [c.as_json() for c in resolved]
                said["concepts"] = _said(resolved)
            if fb.regions:
                regions = self._regions(s, caller.app_id, view, fb, predicted, output_id or named_output)
                resolved += [c for r in regions for c in r["concepts"]]
                normalized["regions"] = [_normalized_region(r) for r in regions]
                said["regions"] = sorted(([r["feedback"], r["box"], r["region_id"], _said(r["concepts"]), r["face"]]
                                          for r in regions), key=json.dumps)
        statement = {"app": caller.app_id, "kind": fb.kind, "output": output_id or ["unlinked", named_output],
                     "model": view.model.pk, "version": used_version, "input": input_id or fb.input_id,
                     "image": image, "end_user": fb.info.end_user_id, "session": fb.info.session_id, "said": said}
        new = tuple(sorted({(c.id, c.name) for c in resolved if c.source == NEW}))
        return self.log.append(NewEvent(
            app_id=caller.app_id, key_id=caller.key_id, event_type=fb.info.event_type, body_hash=body_hash(statement),
            normalized=normalized, raw=raw, end_user_id=fb.info.end_user_id, session_id=fb.info.session_id,
            model_pk=view.model.pk, version_id=used_version, output_id=output_id, input_id=input_id,
            new_concepts=new))

    def _regions(self, s: Connection, app_id: str, view: ModelView, fb: ModelFeedbackIn,
                 predicted: list[Predicted], output_ref: str) -> list[dict[str, Any]]:
        """Each region tied to a predicted one (none for unlinked feedback), its concepts resolved
        and its face attributes kept as sent."""
        out = []
        for r, m in zip(fb.regions, match_regions(fb.regions, predicted, output_ref)):
            out.append({"feedback": r.feedback, "box": [m.box.top, m.box.left, m.box.bottom, m.box.right],
                        "region_id": m.region_id, "matched_by": m.by, "iou": m.iou,
                        "concepts": self.concepts.resolve(s, app_id, view, r.concepts),
                        "face": {attribute: [_as_said(c) for c in concepts] for attribute, concepts in r.face}})
        return out

    @staticmethod
    def _check_embedding(view: ModelView) -> None:
        m = view.model
        if m.model_type == EMBEDDING:
            raise errors.ModelInvalid(f"model {m.id!r} ({m.name}) is an embedding model: it outputs vectors, not "
                                      "concepts or regions, so it takes no prediction feedback (say which search "
                                      "hits were right with POST /v2/searches/feedback)")

    @staticmethod
    def _check_kind(view: ModelView, fb: ModelFeedbackIn) -> None:
        """Feedback on a known output must say something of what its model predicts (concepts for a
        concept model, regions for a detection model); the other kind beside it is recorded too."""
        m = view.model
        if not fb.concepts and m.model_type == CONCEPT:
            raise errors.ModelInvalid(f"input.data.regions: model {m.id!r} ({m.name}) is a concept model; its "
                                      "feedback is input.data.concepts, regions are for detection models")
        if not fb.regions and m.model_type == DETECTION:
            raise errors.ModelInvalid(f"input.data.concepts: model {m.id!r} ({m.name}) is a detection model; its "
                                      "feedback is input.data.regions (each with its own data.concepts)")

    def _output(self, s: Connection, app_id: str, view: ModelView, version: ModelVersion | None, output_id: str,
                with_result: bool) -> Any:
        """The output judged (its result, to tie regions to, read only for region feedback); None for an
        id unknown here, unless links are required."""
        output = (_OUTPUT_WITH_RESULT if with_result else _OUTPUT).first(s, {"id": output_id})
        if output is None or output.app_id != app_id:
            if not self.require_link:
                return None
            raise errors.ResourceNotFound(f"{INFO}.output_id: output {output_id!r} does not exist in this app "
                                          "(use the id of an output returned by predict)",
                                          description="Output does not exist")
        if output.model_pk != view.model.pk:
            other = s.execute(select(Model.id, Model.name).where(Model.pk == output.model_pk)).first()
            made_by = f"{other.id!r} ({other.name})" if other is not None else "another model"
            raise errors.InvalidRequest(f"{INFO}.output_id: output {output_id!r} was predicted by model {made_by}, "
                                        f"not by {view.model.id!r} ({view.model.name})")
        if version is not None and output.version_id != version.id:
            raise errors.InvalidRequest(f"{INFO}.output_id: output {output_id!r} was predicted by version "
                                        f"{output.version_id!r} of this model, not by version {version.id!r}")
        return output

    @staticmethod
    def _input_id(s: Connection, app_id: str, named: str | None, output: Any) -> str | None:
        """The input the feedback is about: the output's, or a stored input holding the very same image.

        Clients predict on bytes and then name the stored input those bytes came from (the Python
        client cannot send an input id with predict), so a stored input with the output's image
        digest is the same input. Any other id names another image: refused.
        """
        if named is None or named == output.input_id:
            return output.input_id
        stored = _INPUT_DIGEST.first(s, {"app_id": app_id, "id": named})
        if stored is not None and stored.digest == output.digest:
            return named
        raise errors.InputInvalid(f"input.id: output {output.id!r} was predicted on input {output.input_id!r}; "
                                  f"{named!r} is neither that input nor a stored input with the same image")

    @staticmethod
    def _image(fb: ModelFeedbackIn, output: Any) -> dict[str, Any] | None:
        """What the body says the image is: a URL as given (never fetched), base64 by its digest.

        Base64 can be checked without fetching anything: bytes of another image than the output's
        are refused as a different ``input.id`` is, so no label lands on an image never judged.
        """
        if fb.image is None:
            return None
        if fb.image.base64 is not None:
            digest = _base64_digest(fb.image.base64)
            if digest != output.digest:
                raise errors.InputInvalid(f"input.data.image.base64: output {output.id!r} was predicted on another "
                                          "image (its bytes differ); feedback is about the image the output judged")
            return {"base64_sha256": digest}
        return {"url": fb.image.url}

    @staticmethod
    def _unlinked_image(s: Connection, app_id: str, fb: ModelFeedbackIn) -> tuple[str | None, str | None, Any]:
        """(input id, image digest, image as recorded) of feedback with no output: a stored input
        the body names is the image; else base64 bytes are, by their digest; a URL is recorded only."""
        image: dict[str, Any] = {}
        if fb.image is not None and fb.image.url is not None:
            image["url"] = fb.image.url
        stored = _INPUT_DIGEST.first(s, {"app_id": app_id, "id": fb.input_id}) if fb.input_id else None
        if stored is not None and stored.digest is not None:  # not one whose download failed: no image
            return fb.input_id, stored.digest, image or None
        if fb.image is not None and fb.image.base64 is not None:
            image["base64_sha256"] = digest = _base64_digest(fb.image.base64)
            return None, digest, image
        return None, None, image or None

    # -- search feedback ----------------------------------------------------------------------
    def record_search(self, caller: Caller, fb: SearchFeedbackIn, raw: Any) -> Appended:
        search_id = fb.info.search_id or ""
        with self.db.reading() as s:
            search = _SEARCH.first(s, {"id": search_id})
            if search is None or search.app_id != caller.app_id:
                if not self.require_link:
                    return self._unlinked_click(caller, fb, raw)
                raise errors.ResourceNotFound(f"{INFO}.search_id: search {search_id!r} does not exist in this app "
                                              "(use the id of a search response)", description="Search does not exist")
            hit = _HIT.first(s, {"search_id": search_id, "input_id": fb.input_id})
        if hit is None:
            raise errors.InputNotFound(f"input.id: input {fb.input_id!r} is not among the hits of search "
                                       f"{search_id!r}, so it cannot have been clicked",
                                       description="Input is not a hit of this search")
        normalized: NormalizedEvent = {"kind": EventKind.SEARCH_CLICK, "search_id": search_id, "input_id": fb.input_id,
                                       "rank": hit.rank, "score": hit.score, "search_kind": search.kind,
                                       "digest": hit.digest}
        statement = {"app": caller.app_id, "kind": EventKind.SEARCH_CLICK, "search": search_id, "input": fb.input_id,
                     "end_user": fb.info.end_user_id, "session": fb.info.session_id}
        return self.log.append(NewEvent(
            app_id=caller.app_id, key_id=caller.key_id, event_type=fb.info.event_type, body_hash=body_hash(statement),
            normalized=normalized, raw=raw, end_user_id=fb.info.end_user_id, session_id=fb.info.session_id,
            search_id=search_id, input_id=fb.input_id, rank=hit.rank))


    def _unlinked_click(self, caller: Caller, fb: SearchFeedbackIn, raw: Any) -> Appended:
        """A click on a search unknown here: stored as said, with no search, rank or score (so no
        click learning or search metric reads it)."""
        search_id = fb.info.search_id or ""
        normalized: NormalizedEvent = {"kind": EventKind.SEARCH_CLICK, "search_id": None, "input_id": fb.input_id,
                                       "rank": None, "score": None,
                                       "unlinked": {"search_id": search_id, "input_id": fb.input_id}}
        statement = {"app": caller.app_id, "kind": EventKind.SEARCH_CLICK, "search": ["unlinked", search_id],
                     "input": fb.input_id, "end_user": fb.info.end_user_id, "session": fb.info.session_id}
        return self.log.append(NewEvent(
            app_id=caller.app_id, key_id=caller.key_id, event_type=fb.info.event_type, body_hash=body_hash(statement),
            normalized=normalized, raw=raw, end_user_id=fb.info.end_user_id, session_id=fb.info.session_id))


def _base64_digest(b64: str) -> str:
    try:
        return digest_of(decode_base64(b64))
    except errors.ApiError as exc:
        raise errors.InputInvalid("input.data.image.base64: not valid base64 (it only needs to name the "
                                  "image; feedback never stores it)") from exc


def _said(concepts: list[Resolved]) -> list[list[Any]]:
    return sorted([c.id, c.present] for c in concepts)


def _normalized_region(r: dict[str, Any]) -> NormalizedRegion:
    """A region of :meth:`FeedbackRecorder._regions` as stored: its resolved concepts as JSON."""
    return {"feedback": r["feedback"], "box": r["box"], "region_id": r["region_id"], "matched_by": r["matched_by"],
            "iou": r["iou"], "concepts": [c.as_json() for c in r["concepts"]], "face": r["face"]}


def _as_said(c: ConceptIn) -> NormalizedConcept:
    """A face attribute's concept as sent (attribute values such as age '1' or 'male' are not
    resolved into the app's concepts)."""
    return {"id": c.ref, "name": c.name or c.ref, "value": 1.0 if c.present else 0.0}
