"""torch layers and their converters (LUTLinear, L-Mul attention, ...); each registers with frugalnn.convert."""
