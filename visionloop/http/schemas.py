"""Request bodies of the Clarifai v2 wire format, as the official clients send them.

Lenient where the clients differ (concept ``value`` as ``true``/``false`` or ``1.0``/``0.0``;
JSON ``null`` for any optional field; unknown fields such as ``user_app_id`` ignored) and strict
where a wrong type would lose meaning (ids must be strings, values within [0, 1]).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, WithJsonSchema


class Wire(BaseModel):
    """Unknown fields are accepted (the official clients send some) and unused, but kept aside in
    ``unknown_fields``: when something required is missing, a misspelling beside it (``"imgae"``)
    is the likely cause, and the refusal names it (:mod:`visionloop.http.unknown_fields`)."""

    model_config = ConfigDict(extra="allow")  # set aside by pydantic's core, cheaper than a validator of ours

    @property
    def unknown_fields(self) -> tuple[str, ...]:
        return tuple(self.model_extra or ())


def _concept_value(raw: Any) -> Any:
    """true/false or a number in [0, 1]; null means present (1.0), as protobuf's default would not."""
    if raw is None:
        return 1.0
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, (int, float)):
        if not 0.0 <= float(raw) <= 1.0:
            raise ValueError(f"concept value must be true/false or a number in [0, 1], got {raw}")
        return float(raw)
    raise ValueError(f"concept value must be true/false or a number in [0, 1], got {raw!r}")


# The schema documents what is accepted on the wire, not the float it becomes.
ConceptValue = Annotated[float, BeforeValidator(
    _concept_value, json_schema_input_type=bool | Annotated[float, Field(ge=0.0, le=1.0)] | None)]


def _list_or_empty(raw: Any) -> Any:
    return [] if raw is None else raw


def _dict_or_empty(raw: Any) -> Any:
    return {} if raw is None else raw


class ConceptIn(Wire):
    id: StrictStr | None = None
    name: StrictStr | None = None
    value: ConceptValue = 1.0
    language: StrictStr | None = None
    app_id: StrictStr | None = None


ConceptList = Annotated[list[ConceptIn], BeforeValidator(_list_or_empty, json_schema_input_type=list[ConceptIn] | None)]


class ImageIn(Wire):
    url: StrictStr | None = None
    base64: StrictStr | None = None
    allow_duplicate_url: bool | None = None


class GeoPointIn(Wire):
    """Degrees; a missing coordinate is 0, as protobuf JSON omits zeros (the gRPC clients do)."""

    latitude: Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)] = 0.0
    longitude: Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)] = 0.0


class GeoIn(Wire):
    geo_point: GeoPointIn | None = None


class DataIn(Wire):
    image: ImageIn | None = None
    concepts: ConceptList = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    geo: GeoIn | None = None
    # an input's annotated regions, checked field by field by visionloop.services.input_regions
    regions: Annotated[list[Any] | None, WithJsonSchema({"anyOf": [
        {"type": "array", "items": {"type": "object"}}, {"type": "null"}]})] = None


# Documented for clients and fuzzers; visionloop.ids.is_valid_client_id is what checks it.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


class InputIn(Wire):
    id: StrictStr | None = Field(default=None, json_schema_extra={"pattern": CLIENT_ID_PATTERN})
    data: Annotated[DataIn, BeforeValidator(_dict_or_empty, json_schema_input_type=DataIn | None)] = \
        Field(default_factory=DataIn)


# null counts as an empty list, which every route refuses: the schema says at least one
InputList = Annotated[list[InputIn], BeforeValidator(_list_or_empty, json_schema_input_type=Annotated[
    list[InputIn], Field(min_length=1)])]


class PaginationIn(Wire):
    page: int | None = None
    per_page: int | None = None


class PostInputsRequest(Wire):
    inputs: InputList


class PatchInputsRequest(Wire):
    inputs: InputList
    action: StrictStr | None = "merge"


class DeleteInputsRequest(Wire):
    ids: Annotated[list[StrictStr], BeforeValidator(_list_or_empty, json_schema_input_type=list[StrictStr] | None)] = \
        Field(default_factory=list)
    delete_all: bool | None = False


DeleteModelsRequest = DeleteInputsRequest  # the same shape: ids, or delete_all


class ConceptsRequest(Wire):
    concepts: Annotated[list[ConceptIn], BeforeValidator(_list_or_empty, json_schema_input_type=Annotated[
        list[ConceptIn], Field(min_length=1)])]
    action: StrictStr | None = None


class ConceptQueryIn(Wire):
    name: StrictStr | None = ""
    language: StrictStr | None = None


class ConceptSearchRequest(Wire):
    concept_query: ConceptQueryIn
    pagination: PaginationIn | None = None


class OutputConfigIn(Wire):
    min_value: float | None = None
    max_concepts: int | None = None
    select_concepts: ConceptList = Field(default_factory=list)
    concepts_mutually_exclusive: bool | None = None  # stored by POST /v2/models
    closed_environment: bool | None = None
    hyper_params: dict[str, Any] | None = None  # stored as given, read back; training has its own settings


class OutputDataIn(Wire):
    concepts: ConceptList = Field(default_factory=list)


class OutputInfoIn(Wire):
    type: StrictStr | None = None  # POST /v2/models: "visual-detector" (or "detection") for a detection model
    type_ext: StrictStr | None = None
    output_config: OutputConfigIn | None = None
    data: OutputDataIn | None = None  # the concepts of a model POST /v2/models creates


class ModelIn(Wire):
    id: StrictStr | None = None
    name: StrictStr | None = None
    model_type_id: StrictStr | None = None  # clarifai-grpc's spelling of output_info.type
    output_info: OutputInfoIn | None = None


class PredictRequest(Wire):
    inputs: InputList
    model: ModelIn | None = None


class CreateModelRequest(Wire):
    model: ModelIn


class PatchModelsRequest(Wire):
    models: Annotated[list[ModelIn], Field(min_length=1)]
    action: StrictStr | None = None


class ModelQueryIn(Wire):
    name: StrictStr | None = None
    type: StrictStr | None = None
    model_type_id: StrictStr | None = None


class ModelSearchRequest(Wire):
    model_query: ModelQueryIn
    pagination: PaginationIn | None = None


MAX_TERMS = 100  # per search query, counted over all of its ands (docs/limits-and-fairness.md)


def _query_schema() -> dict[str, Any]:
    """The query language as ``search_query.parse_query`` reads it (it is parsed by hand, not by pydantic):
    each term of ``ands`` has ``input`` and/or ``output`` and must search by at least one thing."""
    def obj(required: str | None = None, **props: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            out["required"] = [required]
        return out

    ref = {"type": "string", "minLength": 1}
    concept = {"type": "object", "properties": {
        "value": {"anyOf": [{"type": "boolean"}, {"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]}},
        "anyOf": [{"required": ["id"], "properties": {"id": ref}}, {"required": ["name"], "properties": {"name": ref}}]}
    concepts = {"type": "array", "minItems": 1, "maxItems": MAX_TERMS, "items": concept}
    by = [  # what a term can search by
        obj("input", input=obj("data", data=obj("concepts", concepts=concepts))),
        obj("input", input=obj("data", data=obj("metadata", metadata={"type": "object"}))),
        obj("input", input=obj("data", data=obj("image", image=obj("url", url={"type": "string"})))),
        obj("output", output=obj("data", data=obj("concepts", concepts=concepts))),
        obj("output", output=obj("input", input=obj("id", id=ref))),
        obj("output", output=obj("input", input=obj("data", data=obj("image", image={
            "type": "object", "anyOf": [obj("base64", base64={"type": "string", "minLength": 1}),
                                        obj("url", url={"type": "string", "minLength": 1})]})))),
    ]
    nullable_object = {"anyOf": [{"type": "object"}, {"type": "null"}]}
    term = {"type": "object", "properties": {"input": nullable_object, "output": nullable_object},
            "propertyNames": {"enum": ["input", "output"]}, "anyOf": by}
    return {"type": "object", "required": ["ands"], "properties": {"ands": {"type": "array", "minItems": 1,
                                                                         "maxItems": MAX_TERMS, "items": term}}}


class SearchRequest(Wire):
    query: Annotated[dict[str, Any], WithJsonSchema(_query_schema())]
    pagination: PaginationIn | None = None


class TrainOptionsIn(Wire):
    reliability: bool | None = True


class TrainRequest(Wire):
    visionloop: TrainOptionsIn | None = None


# -- responses ----------------------------------------------------------------------------------------
class StatusOut(BaseModel):
    code: int = Field(description="Clarifai status code: 10000 Ok, 10010 mixed batch, 11xxx request, 2xxxx "
                                  "model, 3xxxx input, 4xxxx predict/search/concepts, 10020 internal failure")
    description: str
    details: str | None = Field(default=None, description="What was wrong, naming the field")


class ErrorOut(BaseModel):
    """Every failure answers with the status envelope alone."""

    status: StatusOut
