# Writes the fuzz seeds in this directory by hand (json + raw bytes), not with
# the package under test. Run: python3 make_seeds.py
import json, struct

def put(path, header, data):
    h = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)

put("mixed.safetensors",
    {"__metadata__": {"format": "pt"},
     "w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
     "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
     "ids": {"dtype": "I64", "shape": [], "data_offsets": [12, 20]},
     "e": {"dtype": "U8", "shape": [0], "data_offsets": [20, 20]}},
    bytes(range(20)))
put("f8.safetensors",
    {"q": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]},
     "m": {"dtype": "BOOL", "shape": [2, 1], "data_offsets": [4, 6]}},
    bytes([1, 2, 3, 4, 1, 0]))
put("gap.safetensors",
    {"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
     "b": {"dtype": "U8", "shape": [1], "data_offsets": [2, 3]}},
    bytes(3))
