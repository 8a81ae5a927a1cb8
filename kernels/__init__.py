"""Fused kernels for gradtensor (filled by the kernels work)."""
