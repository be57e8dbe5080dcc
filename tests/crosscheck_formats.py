#!/usr/bin/env python3
"""Byte compatibility of moak's release formats with the libraries that
define them, bit for bit, through ctypes on the built libmoak:

  MXFP4 (GGUF)      quantize and dequantize  == gguf.quants (ggml's reference, ported)
  NVFP4 (GGUF)      dequantize, UE4M3 scales == gguf.quants (NVFP4, fp32_to_ue4m3)
  FP8_E4M3_B128     quantize and dequantize  == ml_dtypes.float8_e4m3fn (+ amax/448 block scales)
  MXFP4_ST          dequantize               == ml_dtypes.float4_e2m1fn x 2^(scale - 127),
                    quantize                 == gguf's MXFP4 bytes re-laid out (same numbers)
  I4_G32_CT         quantize and dequantize  == compressed-tensors' rule written here in numpy
                    (bf16 from ml_dtypes); compressed-tensors itself needs torch, not in CI

Data: random normal values of many magnitudes, with zeros, f32 subnormals,
+-448, and blocks whose amax sits near 2^127 (the largest E8M0 exponents);
for dequantization, every byte code and scale byte 0..255.

Usage: crosscheck_formats.py PATH/TO/libmoak.so
Exit: 0 pass, 1 fail, 77 skip (a Python package is missing).
"""
import ctypes
import os
import sys

try:
    import numpy as np
    import ml_dtypes
    from gguf import quants as gq
    from gguf.constants import GGMLQuantizationType as QT
except Exception as exc:  # ImportError, or a broken install
    print(f"SKIP: crosscheck_formats needs numpy, ml_dtypes and gguf ({exc}); "
          "pip install gguf ml-dtypes numpy")
    sys.exit(77)

failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures += 1


def same_bits(a, b):
    """float32 arrays equal bit for bit (NaN payloads aside: NaN == NaN)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(nan | (a.view(np.uint32) == b.view(np.uint32))))


lib = ctypes.CDLL(sys.argv[1] if len(sys.argv) > 1 else "libmoak.so")
lib.moak_format_from_name.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
lib.moak_format_row_bytes.argtypes = [ctypes.c_int, ctypes.c_int64]
lib.moak_format_row_bytes.restype = ctypes.c_size_t
lib.moak_format_scales_bytes.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
lib.moak_format_scales_bytes.restype = ctypes.c_size_t
lib.moak_quantize.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_void_p, ctypes.c_size_t]
lib.moak_dequantize.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64,
                                ctypes.c_int64, ctypes.c_void_p]
lib.moak_last_error.argtypes = [ctypes.c_void_p]
lib.moak_last_error.restype = ctypes.c_char_p


def fmt(name):
    f = ctypes.c_int()
    if lib.moak_format_from_name(name.encode(), ctypes.byref(f)) != 0:
        raise SystemExit(f"libmoak does not know format {name}")
    return f.value


def sizes(f, rows, cols):
    return lib.moak_format_row_bytes(f, cols) * rows, lib.moak_format_scales_bytes(f, rows, cols)


def moak_quantize(name, x):
    f = fmt(name)
    x = np.ascontiguousarray(x, np.float32)
    rows, cols = x.shape
    data, scales = sizes(f, rows, cols)
    out = np.zeros(data + scales, np.uint8)
    st = lib.moak_quantize(f, x.ctypes.data, rows, cols, out.ctypes.data, out.nbytes)
    if st != 0:
        raise SystemExit(f"moak_quantize({name}): {lib.moak_last_error(None).decode()}")
    return out[:data], out[data:]


def moak_dequantize(name, data, scales, rows, cols):
    f = fmt(name)
    src = np.ascontiguousarray(np.concatenate([np.asarray(data, np.uint8).ravel(),
                                               np.asarray(scales, np.uint8).ravel()]))
    out = np.zeros((rows, cols), np.float32)
    st = lib.moak_dequantize(f, src.ctypes.data, src.nbytes, rows, cols, out.ctypes.data)
    if st != 0:
        raise SystemExit(f"moak_dequantize({name}): {lib.moak_last_error(None).decode()}")
    return out


seed = int(os.environ.get("MOAK_TEST_SEED", "0")) or int.from_bytes(os.urandom(8), "little")
print(f"# seed {seed} (replay with MOAK_TEST_SEED={seed})")
rng = np.random.default_rng(seed)


def awkward(rows, cols, block):
    """Normal values, each block scaled by its own power of two over a wide
    range, with zeros, subnormals, +-448 and near-2^127 blocks mixed in."""
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    nb = cols // block
    exps = rng.integers(-30, 30, size=(rows, nb))
    exps[rng.random((rows, nb)) < 0.05] = 124          # amax near 2^126..2^127
    exps[rng.random((rows, nb)) < 0.05] = -120         # tiny blocks
    x = (x.reshape(rows, nb, block) * np.ldexp(1.0, exps)[..., None]).astype(np.float32)
    x = x.reshape(rows, cols)
    flat = x.ravel()
    pick = rng.random(flat.size)
    flat[pick < 0.02] = 0.0
    sub = (pick >= 0.02) & (pick < 0.03)
    flat[sub] = (rng.integers(1, 1 << 23, sub.sum()) * np.float32(2.0 ** -149)).astype(np.float32)
    flat[(pick >= 0.03) & (pick < 0.035)] = 448.0
    flat[(pick >= 0.035) & (pick < 0.04)] = -448.0
    x[rows // 2, :block] = 0.0                         # one all-zero block
    return x


# ---- FP8 E4M3 with 128 x 128 block scales --------------------------------------------

def fp8_reference(x):
    rows, cols = x.shape
    sr = -(-rows // 128)
    scales = np.ones((sr, cols // 128), np.float32)
    q = np.zeros((rows, cols), np.uint8)
    for i in range(sr):
        for j in range(cols // 128):
            blk = x[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            amax = np.float32(np.max(np.abs(blk)))
            s = np.float32(amax / np.float32(448.0)) if amax > 0 else np.float32(1.0)
            scales[i, j] = s
            q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = \
                (blk / s).astype(np.float32).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    return q, scales


x = awkward(200, 384, 128)
# one block with amax exactly 448: its scale is 1, so its codes test the raw
# rounding, subnormals and ties included
raw = (rng.integers(-(1 << 12), 1 << 12, (128, 128)) * np.float32(2.0 ** -13)).astype(np.float32)
raw[0, 0] = 448.0
x[:128, 256:384] = raw
data, scales = moak_quantize("fp8_e4m3_b128", x)
ref_q, ref_s = fp8_reference(x)
check(np.array_equal(data, ref_q.ravel()), "fp8_e4m3_b128 quantize: codes == ml_dtypes float8_e4m3fn of x / (amax/448)")
check(np.array_equal(scales.view(np.float32), ref_s.ravel()), "fp8_e4m3_b128 quantize: block scales == amax / 448 (1 for zero blocks)")
codes = rng.integers(0, 256, (256, 256), dtype=np.uint8)
codes[0, :256] = np.arange(256)
sc = (rng.standard_normal((2, 2)) * 3).astype(np.float32)
deq = moak_dequantize("fp8_e4m3_b128", codes, sc.view(np.uint8), 256, 256)
ref = codes.view(ml_dtypes.float8_e4m3fn).astype(np.float32) * np.repeat(np.repeat(sc, 128, 0), 128, 1)
check(same_bits(deq, ref), "fp8_e4m3_b128 dequantize: every code == ml_dtypes float8_e4m3fn x scale")

# ---- MXFP4 (GGUF) --------------------------------------------------------------------

x = awkward(64, 256, 32)
x[np.abs(x) < 2.0 ** -100] = 0.0   # ggml's exponent cast is undefined for amax < 2^-125
x[3, 32:64] = 0.0
data, _ = moak_quantize("mxfp4", x)
ref = gq.quantize(x, QT.MXFP4)
check(np.array_equal(data, ref.ravel()), "mxfp4 quantize == gguf.quants MXFP4 (ggml's reference quantizer)")
blocks = rng.integers(0, 256, (64, 8 * 17), dtype=np.uint8)
blocks.reshape(-1, 17)[:256, 0] = np.arange(256)          # every E8M0 byte, 255 included
deq = moak_dequantize("mxfp4", blocks, np.zeros(0, np.uint8), 64, 256)
check(same_bits(deq, gq.dequantize(blocks, QT.MXFP4)), "mxfp4 dequantize == gguf.quants MXFP4 (e = 0..255)")

# ---- MXFP4 as gpt-oss's safetensors (blocks + scales) ----------------------------------

st_blocks, st_scales = moak_quantize("mxfp4_st", x)
g = ref.reshape(-1, 17)
codes = np.concatenate([g[:, 1:] & 15, g[:, 1:] >> 4], axis=1)          # element order
relaid = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
check(np.array_equal(st_scales, g[:, 0]) and np.array_equal(st_blocks, relaid.ravel()),
      "mxfp4_st quantize == gguf's MXFP4 bytes re-laid out (scale byte equal, nibbles 2k/2k+1)")
b = rng.integers(0, 256, (64, 128), dtype=np.uint8)
s = rng.integers(0, 256, (64, 8), dtype=np.uint8)
s.ravel()[:256] = np.arange(256)
deq = moak_dequantize("mxfp4_st", b, s, 64, 256)
nib = np.stack([b & 15, b >> 4], axis=-1).reshape(64, 256)
vals = nib.view(ml_dtypes.float4_e2m1fn).astype(np.float32)
ref = np.ldexp(vals, (np.repeat(s.astype(np.int32), 32, axis=1) - 127)).astype(np.float32)
check(same_bits(deq, ref), "mxfp4_st dequantize == ml_dtypes float4_e2m1fn x 2^(scale-127) (-0.0, scale 255)")

# ---- NVFP4 (GGUF) --------------------------------------------------------------------

blocks = rng.integers(0, 256, (32, 4 * 36), dtype=np.uint8)
blocks.reshape(-1, 36)[:64, :4] = np.arange(256).reshape(64, 4)          # every UE4M3 byte
one = np.array([1.0], np.float32).view(np.uint8)
deq = moak_dequantize("nvfp4", blocks, one, 32, 256)
check(same_bits(deq, gq.dequantize(blocks, QT.NVFP4)), "nvfp4 dequantize (tensor scale 1) == gguf.quants NVFP4")
x = rng.standard_normal((32, 256)).astype(np.float32) * np.float32(0.02)
x[5, :64] = 0.0
data, ts = moak_quantize("nvfp4", x)
t = ts.view(np.float32)[0]
check(t == np.float32(np.max(np.abs(x)) / np.float32(6.0 * 448.0)), "nvfp4 quantize: tensor scale == amax / (6 * 448)")
sub_amax = np.max(np.abs(x.reshape(-1, 16)), axis=1)
want = gq.NVFP4.fp32_to_ue4m3((sub_amax / np.float32(6.0) / t).astype(np.float32))
got = data.reshape(-1, 36)[:, :4].ravel()
check(np.array_equal(got, want), "nvfp4 quantize: sub-block scales == gguf fp32_to_ue4m3(amax / 6 / tensor scale)")
deq = moak_dequantize("nvfp4", data, ts, 32, 256)
unit = (gq.NVFP4.ue4m3_to_fp32(got).astype(np.float64) * 2 * float(t))[:, None]
table = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, 0, -.5, -1, -1.5, -2, -3, -4, -6])
best = np.min(np.abs(x.reshape(-1, 16)[..., None] - table * unit[..., None]), axis=-1)
err = np.abs(x.reshape(-1, 16).astype(np.float64) - deq.reshape(-1, 16))
check(bool(np.all(err <= best + 1e-6 * np.abs(x.reshape(-1, 16)))), "nvfp4 quantize: every element takes a nearest E2M1 value (to f32 rounding of the candidates)")

# ---- INT4 symmetric group 32, bf16 scales (compressed-tensors pack-quantized) -----------

x = awkward(48, 256, 32)
x[np.abs(x) > 2.0 ** 100] = 1.0
x[7, 64:96] = 0.0
data, scales = moak_quantize("i4_g32_ct", x)
grp = x.reshape(-1, 32)
sc = (np.max(np.abs(grp), axis=1) / np.float32(7.5)).astype(np.float32).astype(ml_dtypes.bfloat16)
sc = np.where(sc.astype(np.float32) == 0, ml_dtypes.bfloat16(2.0 ** -7), sc)
q = np.clip(np.rint(grp / sc.astype(np.float32)[:, None]), -8, 7).astype(np.int32) + 8
q = q.reshape(48, 256)
packed = np.zeros((48, 32), np.uint32)
for i in range(8):                                   # element 8w+i at bits 4i of word w
    packed |= q[:, i::8].astype(np.uint32) << np.uint32(4 * i)
check(np.array_equal(data, packed.astype('<u4').view(np.uint8).ravel()),
      "i4_g32_ct quantize: int32 words == compressed-tensors' pack (q + 8 at bits 4i)")
check(np.array_equal(scales, sc.view(np.uint8).ravel()), "i4_g32_ct quantize: bf16 scales == amax/7.5 in bf16 (0 -> 2^-7)")
deq = moak_dequantize("i4_g32_ct", data, scales, 48, 256)
ref = (q - 8).astype(np.float32).reshape(-1, 32) * sc.astype(np.float32)[:, None]
check(same_bits(deq, ref.reshape(48, 256)), "i4_g32_ct dequantize == (nibble - 8) x scale, exact in f32")

print(f"{failures} failed")
sys.exit(1 if failures else 0)
