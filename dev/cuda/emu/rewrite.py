# dev/cuda/emu/rewrite.py: rewrites CUDA launches for the emulator (plain C++ has no <<< >>>).
# Rewrites CUDA launches  K<<<G, B>>>(ARGS)  into  emu::launch(dim3(G), dim3(B), [&]() { K(ARGS); })
import sys, re
def split_top(s):
    depth = 0
    for i, ch in enumerate(s):
        if ch in '([{': depth += 1
        elif ch in ')]}': depth -= 1
        elif ch == ',' and depth == 0: return s[:i], s[i+1:]
    raise SystemExit("no top-level comma in launch config: " + s)
src = open(sys.argv[1]).read()
out, pos = [], 0
while True:
    i = src.find('<<<', pos)
    if i < 0: out.append(src[pos:]); break
    j = i
    while j > 0 and (src[j-1].isalnum() or src[j-1] in '_:'): j -= 1
    kernel = src[j:i]
    k = src.index('>>>', i)
    g, b = split_top(src[i+3:k])
    assert src[k+3] == '('
    depth, m = 0, k + 3
    while True:
        if src[m] == '(': depth += 1
        elif src[m] == ')':
            depth -= 1
            if depth == 0: break
        m += 1
    args = src[k+4:m]
    out.append(src[pos:j])
    out.append('emu::launch(dim3(%s), dim3(%s), [&]() { %s(%s); })' % (g.strip(), b.strip(), kernel, args))
    pos = m + 1
open(sys.argv[2], 'w').write(''.join(out))
