"""Parse the Clarifai search query language (``query.ands``) into search terms.

Unknown or malformed terms are refused with SEARCH_INVALID_REQUEST naming the term's path;
JSON ``null`` counts as absent, as the official clients send it. A query holds at most
:data:`MAX_TERMS` terms (each concept of a list counts as one): every term is a pass over the app's
inputs, so a longer query is refused (11102) before any is parsed further, naming where it went over.
"""

from __future__ import annotations

from typing import Any

from visionloop import errors
from visionloop.http.schemas import MAX_TERMS, _concept_value
from visionloop.services import geo
from visionloop.services.image_source import ImageSource
from visionloop.services.search import ConceptTerm, GeoTerm, MetadataTerm, Term, UrlTerm, VisualTerm


def _over_cap(path: str, count: int) -> errors.InvalidRequest:
    return errors.InvalidRequest(f"{path}: a search takes at most {MAX_TERMS} terms (each concept counts as "
                                 f"one), this query has at least {count}; split it into several searches")


def _obj(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.SearchInvalid(f"{path}: must be an object, got {type(value).__name__}")
    return value


def _concepts(raw: Any, path: str, predicted: bool) -> list[Term]:
    if not isinstance(raw, list) or not raw:
        raise errors.SearchInvalid(f"{path}: must be a non-empty list of concepts")
    if len(raw) > MAX_TERMS:
        raise _over_cap(path, len(raw))
    terms: list[Term] = []
    for i, c in enumerate(raw):
        c = _obj(c, f"{path}[{i}]")
        ref = c.get("id") or c.get("name")
        if not isinstance(ref, str) or not ref:
            raise errors.SearchInvalid(f"{path}[{i}]: a concept needs a string id or name")
        try:
            value = _concept_value(c.get("value"))
        except ValueError as exc:
            raise errors.SearchInvalid(f"{path}[{i}].value: {exc}") from None
        terms.append(ConceptTerm(ref, value >= 0.5, predicted))
    return terms


def _image(image: dict[str, Any], path: str) -> ImageSource | None:
    b64, url = image.get("base64"), image.get("url")
    if b64 is None and url is None:
        return None
    for name, v in (("base64", b64), ("url", url)):
        if v is not None and not isinstance(v, str):
            raise errors.SearchInvalid(f"{path}.{name}: must be a string")
    try:
        return ImageSource.of(b64, url, path)
    except errors.ApiError as exc:
        raise errors.SearchInvalid(exc.details) from None


def _number(raw: Any, path: str, low: float, high: float) -> float:
    """A finite number within [low, high]; missing is 0 (protobuf JSON omits zeros)."""
    value = 0.0 if raw is None else raw
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise errors.SearchInvalid(f"{path}: must be a number from {low:g} to {high:g}, got {raw!r}")
    return float(value)


def _point(raw: Any, path: str) -> geo.GeoPoint:
    point = _obj(raw, path)
    return geo.GeoPoint(_number(point.get("latitude"), f"{path}.latitude", -90, 90),
                        _number(point.get("longitude"), f"{path}.longitude", -180, 180))


def _geo(raw: Any, path: str) -> GeoTerm:
    """``geo_point`` with ``geo_limit`` {type, value}: within a distance; or ``geo_box``: two corners."""
    g = _obj(raw, path)
    corners, point, limit = g.get("geo_box"), g.get("geo_point"), g.get("geo_limit")
    if corners is not None and point is None and limit is None:
        if not isinstance(corners, list) or len(corners) != 2:
            raise errors.SearchInvalid(f"{path}.geo_box: must be a list of two corners, each {{'geo_point': ...}}")
        a, b = (_point(_obj(c, f"{path}.geo_box[{i}]").get("geo_point"), f"{path}.geo_box[{i}].geo_point")
                for i, c in enumerate(corners))
        return GeoTerm(geo.box(a, b))
    if corners is not None or point is None or limit is None:
        raise errors.SearchInvalid(f"{path}: search by place with geo_point and geo_limit, or with geo_box alone")
    limit = _obj(limit, f"{path}.geo_limit")
    kind = limit.get("type")
    if kind not in geo.LIMIT_TYPES:
        raise errors.SearchInvalid(f"{path}.geo_limit.type: must be one of {', '.join(geo.LIMIT_TYPES)}, got {kind!r}")
    value = _number(limit.get("value"), f"{path}.geo_limit.value", 0, 1e9)
    return GeoTerm(geo.circle(_point(point, f"{path}.geo_point"), kind, value))


def parse_term(term: Any, path: str) -> list[Term]:
    term = _obj(term, path)
    known = {"input", "output"}
    if not term or set(term) - known:
        raise errors.SearchInvalid(f"{path}: a term must have 'input' or 'output' "
                                   f"(unknown: {sorted(set(term) - known) or 'empty term'})")
    out: list[Term] = []
    if term.get("input") is not None:
        data = _obj(_obj(term["input"], f"{path}.input").get("data"), f"{path}.input.data")
        if data.get("concepts") is not None:
            out += _concepts(data["concepts"], f"{path}.input.data.concepts", predicted=False)
        if data.get("metadata") is not None:
            out.append(MetadataTerm(_obj(data["metadata"], f"{path}.input.data.metadata")))
        if data.get("geo") is not None:
            out.append(_geo(data["geo"], f"{path}.input.data.geo"))
        image = _obj(data.get("image"), f"{path}.input.data.image")
        if image.get("url") is not None:
            if not isinstance(image["url"], str):
                raise errors.SearchInvalid(f"{path}.input.data.image.url: must be a string")
            out.append(UrlTerm(image["url"]))
    if term.get("output") is not None:
        output = _obj(term["output"], f"{path}.output")
        data = _obj(output.get("data"), f"{path}.output.data")
        if data.get("concepts") is not None:
            out += _concepts(data["concepts"], f"{path}.output.data.concepts", predicted=True)
        query_input = _obj(output.get("input"), f"{path}.output.input")
        if query_input:
            image = _obj(_obj(query_input.get("data"), f"{path}.output.input.data").get("image"),
                         f"{path}.output.input.data.image")
            source = _image(image, f"{path}.output.input.data.image")
            input_id = query_input.get("id")
            if input_id is not None and not isinstance(input_id, str):
                raise errors.SearchInvalid(f"{path}.output.input.id: must be a string")
            if source is None and not input_id:
                raise errors.SearchInvalid(f"{path}.output.input: give an image (url or base64) or an input id")
            out.append(VisualTerm(source=source, input_id=None if source else input_id))
    if not out:
        raise errors.SearchInvalid(f"{path}: the term has nothing to search by")
    return out


def parse_query(query: Any) -> list[Term]:
    query = _obj(query, "query")
    ands = query.get("ands")
    if not isinstance(ands, list) or not ands:
        raise errors.SearchInvalid("query.ands: must be a non-empty list of terms")
    if len(ands) > MAX_TERMS:
        raise _over_cap("query.ands", len(ands))
    terms: list[Term] = []
    for i, term in enumerate(ands):
        terms += parse_term(term, f"query.ands[{i}]")
        if len(terms) > MAX_TERMS:
            raise _over_cap(f"query.ands[{i}]", len(terms))
    return terms
