"""Reads llmrt modules (llm-compile --emit=mlir) and counts, in @train,
the writes into a weight gradient's operands (x, dy of linear_bwd_weight)
before the next weight gradient starts: the bytes llm-lower-to-rt's
overlap-weight-grads keeps for a GPU's second stream. A kernel's outputs
are its trailing operands (three for the layer norm's and attention's
backward, two for the RMS norm's, else one). With two modules (kept,
reused) it compares the two and their arenas."""
import re
import sys


def count(path):
    text = open(path).read()
    arena = int(re.search(r'llmrt.arena_bytes = (\d+)', text).group(1))
    body = text.split('func.func @train')[1].split('func.func @eval')[0]
    bufs = {}
    for m in re.finditer(r'(%\d+) = llmrt.buffer "[^"]*" \{[^}]*offset = (\d+) : i64[^}]*\} : memref<([^>]*)>', body):
        n = 1
        for d in m.group(3).split('x')[:-1]:
            n *= int(d)
        bufs[m.group(1)] = (int(m.group(2)), int(m.group(2)) + 4 * n)
    outs = {'layer_norm_bwd': 3, 'attention_bwd': 3, 'rms_norm_bwd': 2}
    kernels = [(m.group(1), m.group(2).split(', '))
               for m in re.finditer(r'llmrt.kernel "(\w+)"\(([^)]*)\)', body)]
    wg = [i for i, (k, _) in enumerate(kernels) if k == 'linear_bwd_weight']
    bad = 0
    for a, b in zip(wg, wg[1:]):
        read = [bufs[v] for v in kernels[a][1][:2]]
        for k in range(a + 1, b):
            name, ops = kernels[k]
            for v in ops[-outs.get(name, 1):]:
                lo, hi = bufs[v]
                if any(lo < e and s < hi for s, e in read):
                    bad += 1
    return len(wg), bad, arena


n, bad, arena = count(sys.argv[1])
print(f"{n} weight gradients, {bad} writes into their operands before the next")
if len(sys.argv) > 2:
    _, bad2, arena2 = count(sys.argv[2])
    print(f"{'fewer' if bad < bad2 else 'not fewer'} writes than without ({bad} against {bad2}); "
          f"arena {'grows' if arena > arena2 else 'kept'}")
