"""The domain core: the maths and rules every service, `fit`, the evaluation and the benchmark share.

Knows no server and no wire format beyond the generated stubs. Only `encoder` (and `tag_model`,
which uses it) imports onnxruntime: the router and the scorer never load it.
"""
