"""Request bodies of the Clarifai v2 wire format, as the official clients send them.

Lenient where the clients differ (concept ``value`` as ``true``/``false`` or ``1.0``/``0.0``;
JSON ``null`` for any optional field; unknown fields such as ``user_app_id`` ignored) and strict
where a wrong type would lose meaning (ids must be strings, values within [0, 1]).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


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


ConceptValue = Annotated[float, BeforeValidator(_concept_value)]


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


ConceptList = Annotated[list[ConceptIn], BeforeValidator(_list_or_empty)]


class ImageIn(Wire):
    url: StrictStr | None = None
    base64: StrictStr | None = None
    allow_duplicate_url: bool | None = None


class DataIn(Wire):
    image: ImageIn | None = None
    concepts: ConceptList = Field(default_factory=list)
    metadata: dict[str, Any] | None = None


class InputIn(Wire):
    id: StrictStr | None = None
    data: Annotated[DataIn, BeforeValidator(_dict_or_empty)] = Field(default_factory=DataIn)


InputList = Annotated[list[InputIn], BeforeValidator(_list_or_empty)]


class PaginationIn(Wire):
    page: int | None = None
    per_page: int | None = None


class PostInputsRequest(Wire):
    inputs: InputList


class PatchInputsRequest(Wire):
    inputs: InputList
    action: StrictStr | None = "merge"


class DeleteInputsRequest(Wire):
    ids: Annotated[list[StrictStr], BeforeValidator(_list_or_empty)] = Field(default_factory=list)
    delete_all: bool | None = False


class ConceptsRequest(Wire):
    concepts: ConceptList
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


class OutputInfoIn(Wire):
    output_config: OutputConfigIn | None = None


class ModelIn(Wire):
    id: StrictStr | None = None
    name: StrictStr | None = None
    output_info: OutputInfoIn | None = None


class PredictRequest(Wire):
    inputs: InputList
    model: ModelIn | None = None


class ModelQueryIn(Wire):
    name: StrictStr | None = None
    type: StrictStr | None = None
    model_type_id: StrictStr | None = None


class ModelSearchRequest(Wire):
    model_query: ModelQueryIn
    pagination: PaginationIn | None = None


class SearchRequest(Wire):
    query: dict[str, Any]
    pagination: PaginationIn | None = None


class TrainOptionsIn(Wire):
    reliability: bool | None = True


class TrainRequest(Wire):
    visionloop: TrainOptionsIn | None = None
