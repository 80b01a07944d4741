"""Number formats: narrow floats, shortened mantissas, dynamic fixed point, group quantization."""
from frugalnn.formats.dfp import DFP
from frugalnn.formats.floats import FORMATS, OVERFLOW_POLICIES, FloatFormat, get_format, round_to
from frugalnn.formats.groupquant import GroupQuant
from frugalnn.formats.mantissa import round_mantissa, truncate_mantissa

__all__ = [
    "DFP", "FORMATS", "OVERFLOW_POLICIES", "FloatFormat", "GroupQuant",
    "get_format", "round_mantissa", "round_to", "truncate_mantissa",
]
