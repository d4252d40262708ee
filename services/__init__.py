"""The three services (and the gateway), each started as `python -m services.<name>`."""
import os

# numpy's OpenBLAS starts a thread per core that spins between calls. Under load the tagger's tag
# selection (a batch of embeddings times the prototypes) woke that pool, and its spinning thread held
# 0.6 of the second core that the encoder, the router and the event loops need: Route's throughput at 32
# in flight fell by a third (docs/BENCHMARKS.md). The services' arrays are small; one thread is plenty.
# Set before numpy is first imported (this package's modules import it); an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
