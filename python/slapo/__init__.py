"""slapo: run a model library made by slapoc from Python.

    import slapo
    model = slapo.load("bert.so", weights="model.safetensors")
    print(model.inputs)                 # (input_ids: int64[B, S], ...)
    out = model(input_ids=ids)          # numpy, torch, ... (DLPack, no copy)
    logits = out.logits

Pure Python over the library's C ABI (include/slapo/slapo.h) with ctypes:
nothing to build, and only the standard library is needed to import it.
Tensors cross as DLPack. See docs/python.md.
"""

from ._array import Array
from ._errors import SlapoError, Status, status_name
from ._model import Model, Outputs, RandomWeights, TensorSpec, load, random_weights

__version__ = "0.1.0"
ABI_MAJOR = 1

__all__ = [
    "ABI_MAJOR", "Array", "Model", "Outputs", "RandomWeights", "SlapoError", "Status",
    "TensorSpec", "load", "random_weights", "status_name",
]
