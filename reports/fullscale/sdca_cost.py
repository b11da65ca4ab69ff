"sdca: cost of the full covariance against the diagonal at DeepLab-V2 feature size (reports/fullscale/costs.md)."
import time, torch, numpy as np
from cda_nb.prototypes import GaussianStats
from cda_nb.methods.sdca import sdca_term
torch.manual_seed(0)
N, D, C = 4 * 65 * 65, 2048, 19
x = torch.randn(N, D); y = torch.randint(0, C, (N,))
q = torch.randn(4096, D, requires_grad=True); yq = torch.randint(0, C, (4096,))
def med(f, n=3):
    f(); ts = []
    for _ in range(n): t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return float(np.median(ts))
for diag in (False, True):
    st = GaussianStats(C, D, diagonal=diag); st.update(x, y)
    tu = med(lambda: st.update(x, y))
    tb = med(lambda: sdca_term(q, yq, st, 30.0).backward())
    mb = sum(b.numel() * b.element_size() for b in st.buffers()) / 2**20
    print(f"diagonal={diag}: state {mb:.0f} MiB, update {tu*1000:.0f} ms, bound fwd+bwd (4096 px) {tb*1000:.0f} ms")
