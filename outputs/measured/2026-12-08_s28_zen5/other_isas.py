"""The native kernels' tests against builds for other CPUs than this one: AVX2 without
AVX-512 (as on the Zen 3 of sessions 20-26) and plain x86-64 (SSE2: no AVX, the scalar paths).
Usage: python other_isas.py znver3|x86-64"""
import sys
import pytest
from attnlab import native

march = sys.argv[1]
native.FLAGS = [f if not f.startswith("-march=") else f"-march={march}" for f in native.FLAGS]
if march == "x86-64":
    native.FLAGS.append("-mno-avx")
print("flags:", native.FLAGS, "| built:", native.build())
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_native.py", "tests/test_dropout.py",
                      "tests/test_linear.py", "-k", "transpose or training_attention or dropout or drop or mask or match_f_linear or training_step"]))
