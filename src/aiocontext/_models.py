"""Which data model holds a policy's data: chosen once, when a context is made."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from ._chain_model import ChainModel
from ._copy_model import CopyModel, DeepCopyModel
from ._model import DataModel
from ._owned_model import OwnedModel
from ._policy import ChainMap, Copy, DeepCopy, PropagationPolicy, Share
from ._share_model import ShareModel

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["model_for"]

_MODELS: Final[dict[type[PropagationPolicy], type[DataModel]]] = {
    DeepCopy: DeepCopyModel,
    Copy: CopyModel,
    Share: ShareModel,
    ChainMap: ChainModel,
}


def model_class(policy: PropagationPolicy) -> type[DataModel]:
    """The data model of ``policy``: its built-in base's, unless it changes what that
    base does (overrides ``inherit`` or ``root``), which makes it a custom policy."""
    cls = type(policy)
    for base in cls.__mro__:
        model = _MODELS.get(base)
        if model is not None:
            builtin = cast("type[PropagationPolicy]", base)
            if cls.inherit is builtin.inherit and cls.root is builtin.root:
                return model
            break
    return OwnedModel


def model_for(context: Context[Any, Any]) -> DataModel:
    """A new data model for ``context``, by its policy."""
    return model_class(context.policy)(context)
