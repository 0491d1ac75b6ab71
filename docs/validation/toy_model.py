"""Toy model of the composition in docs/validation/arguments.md (not an implementation).

Group elements are modelled as their openings over the independent generators (a dict from
generator name to a coefficient mod ELL): this is exactly the view the extractor has under the
discrete-log assumption. The zk-WIP and the linear proof are replaced by their ideal
functionalities ("accept iff the point has an opening of the required shape satisfying the
relation"), so this model checks the part the first design got wrong: which relation the
verifier's combination of commitments actually enforces. It checks completeness for honest
clients, that the attacks of the first review (R1 a-c) and their variants are rejected, and
the round-level claims of VALIDATION.md §6 (released sum, safety net) on small parameters.

Since review 2 (docs/validation/review2.md) the norm WIP runs on the padded length
N_PAD = 2^ceil(log2(D + LAMBDA)) with the padding pinned on both sides (finding F1; arguments.md
§A.2-A.3): the v' block covers the H side of [D, N_PAD), a zero-target block of the c powers
covers the G side of [N, N_PAD). The ideal WIP accepts only points on G_[0, N_PAD), H_[0, N_PAD),
g0, h. The F1 checks below run the reviewer's padded-position attack against the fixed verifier,
with the unpinned and the H-only-pinned verifiers as controls, and show why the linear proof pads
with generators of its own. The F2/F8 checks model the exclusion evidence of VALIDATION.md §8.5
as revised (the dropped peer's rebuilt key, the accused's signed view of that peer's key entry,
the kappa inside the accused's signed response).

Run: python3 docs/validation/toy_model.py   (prints one line per check; exits 1 on a failure)
"""

import random
import sys

ELL = 2**252 + 27742317777372353535851937790883648493
RNG = random.Random(20261203)


def rnd():
    return RNG.randrange(1, ELL)


def inv(a):
    return pow(a, ELL - 2, ELL)


def centred(a):
    a %= ELL
    return a - ELL if a > ELL // 2 else a


class Pt(dict):
    """A point as its opening {generator: coefficient mod ELL}."""

    def __add__(self, o):
        r = Pt(self)
        for k, v in o.items():
            r[k] = (r.get(k, 0) + v) % ELL
        return Pt({k: v for k, v in r.items() if v})

    def __mul__(self, c):
        return Pt({k: v * c % ELL for k, v in self.items() if v * c % ELL})

    __rmul__ = __mul__

    def __neg__(self):
        return self * (ELL - 1)

    def __sub__(self, o):
        return self + (-o)


def vec(name, values):
    return Pt({(name, i): v % ELL for i, v in enumerate(values) if v % ELL})


def gen(name, c=1):
    return Pt({(name, 0): c % ELL}) if c % ELL else Pt()


def at(name, i, c=1):  # c on generator (name, i)
    return Pt({(name, i): c % ELL}) if c % ELL else Pt()


# ---------------------------------------------------------------- parameters (toy sizes)
D, B_BITS, LAMBDA, PHI = 8, 8, 20, 20  # GHL rows reduced from 128 for speed
B_ENC = 20
N = D + LAMBDA  # 28: not a power of two, so the WIP is padded (F1)
N_PAD = 1 << (N - 1).bit_length()  # 32
MX = int(D**0.5 + 1) * B_ENC
ZMAX = (2**PHI + 1) * MX


def K(xs):  # commitment to x on K_i = G_i + H_i
    return vec("G", xs) + vec("H", xs)


# ---------------------------------------------------------------- norm argument (A)
def norm_prove(x, weight_free=True, tamper=None):
    """Honest commitments, optionally tampered; returns (C, M, V, z, R-dependent prover)."""
    r, rM, gam = rnd(), rnd(), rnd()
    g = [RNG.randrange(-(2**PHI) * MX, 2**PHI * MX + 1) for _ in range(LAMBDA)]
    s = sum(xi * xi for xi in x)
    C = K(x) + gen("h", r)
    M = Pt({("G", D + k): gk % ELL for k, gk in enumerate(g) if gk % ELL}) + gen("h", rM)
    V = gen("g0", s) + gen("h", gam)
    st = dict(x=x, g=g, s=s, C=C, M=M, V=V)
    if tamper:
        tamper(st)
    return st


def norm_verify(st, v1=False, pin="both"):
    """v1=True: the first design's composition (no weight on M, value generator g0 itself).

    The WIP runs on length N_PAD. pin: how the padded positions are constrained (F1).
    "both" (the design since review 2): v' covers the H side of [D, N_PAD) and zero-target
    c powers cover the G side of [N, N_PAD); "h": the v' block only (review 2's proposed fix);
    "none": no public term on the padding (the natural padding the review broke)."""
    C, M, V = st["C"], st["M"], st["V"]
    # range proof (ideal): V on (g0, h) only, B^2 - value in [0, 2^64)
    if set(V) - {("g0", 0), ("h", 0)}:
        return False, "range: V not on (g0, h)"
    sval = centred(V.get(("g0", 0), 0))
    if not 0 <= B_ENC**2 - sval < 2**64:
        return False, "range: value above the bound"
    R = [[RNG.choice((-1, 0, 0, 1)) for _ in range(D)] for _ in range(LAMBDA)]
    z = st.get("z_fn", default_z)(st, R)
    if any(abs(zk) > ZMAX for zk in z):
        return False, "GHL: |z| too large"
    eps, c, v, vp, mu, nu, zeta = rnd(), rnd(), rnd(), rnd(), rnd(), rnd(), rnd()
    if v1:
        eps = zeta = 1
    npad = N_PAD - N
    ck = [pow(c, k + 1, ELL) for k in range(LAMBDA + npad)]  # the last npad: zero targets
    vi = [pow(v, i + 1, ELL) for i in range(D)]
    nvp = N_PAD - D if pin in ("both", "h") else LAMBDA
    vpk = [pow(vp, k + 1, ELL) for k in range(nvp)] + [0] * (N_PAD - D - nvp)
    a = [sum(ck[k] * R[k][i] for k in range(LAMBDA)) % ELL for i in range(D)]
    a += [inv(eps) * ck[k] % ELL for k in range(LAMBDA)]
    a += [inv(eps) * ck[LAMBDA + p] % ELL if pin == "both" else 0 for p in range(npad)]
    w = vi + [0] * (N_PAD - D)
    wp = vi + vpk
    zhat = sum(ck[k] * z[k] for k in range(LAMBDA)) % ELL
    Gam = (mu * zhat - nu * mu * sum(p * q for p, q in zip(wp, a)) - nu * nu * sum(q * q for q in vi)) % ELL
    P = C + M * eps - vec("G", wp) * nu + vec("H", a) * mu + vec("H", w) * nu + V * zeta + gen("g0", Gam * zeta)
    # ideal zk-WIP on P over (G_[0, N_PAD), H_[0, N_PAD), U = zeta g0, h)
    if set(k[0] for k in P) - {"G", "H", "g0", "h"}:
        return False, "WIP: point has components outside G, H, g0, h"
    if any(k[1] >= N_PAD for k in P if k[0] in ("G", "H")):
        return False, "WIP: point has components beyond the padded length"
    ast = [P.get(("G", i), 0) for i in range(N_PAD)]
    bst = [P.get(("H", i), 0) for i in range(N_PAD)]
    val = P.get(("g0", 0), 0) * inv(zeta) % ELL
    if sum(p * q for p, q in zip(ast, bst)) % ELL != val:
        return False, "WIP: inner product does not match"
    return True, "accepted"


def default_z(st, R):
    x = [centred(st["C"].get(("G", i), 0)) for i in range(D)]
    g = [centred(st["M"].get(("G", D + k), 0)) for k in range(LAMBDA)]
    return [sum(R[k][i] * x[i] for i in range(D)) + g[k] for k in range(LAMBDA)]


# ---------------------------------------------------------------- a small round (B, §6)
J_PROJ, LAM2 = 16, 24


def prg(seed, tag):
    r = random.Random(f"{seed}/{tag}")
    return [r.randrange(2**B_BITS) for _ in range(D)]


def scalar(seed, tag):
    return random.Random(f"{seed}/{tag}/scalar").randrange(ELL)


class Client:
    def __init__(self, u, x, peers):
        self.u, self.x, self.peers = u, x, peers
        self.b = f"b{u}"
        self.seeds = {v: f"s{min(u, v)}-{max(u, v)}" for v in peers}

    def sgn(self, v):
        return 1 if self.u < v else -1

    def masks(self):
        m = list(prg(self.b, "self"))
        for v in self.peers:
            pv = prg(self.seeds[v], "pair")
            m = [mi + self.sgn(v) * p for mi, p in zip(m, pv)]
        return m  # over Z

    def blind(self):
        r = scalar(self.b, "r_self")
        for v in self.peers:
            r += self.sgn(v) * scalar(self.seeds[v], "r_pair")
        return r % ELL

    def upload(self, masked_x=None):
        xm = masked_x if masked_x is not None else self.x
        m = self.masks()
        self.y = [(xi + mi) % 2**B_BITS for xi, mi in zip(xm, m)]
        self.C = K(self.x) + gen("h", self.blind())
        return self.y


def proj(rho, v):
    return [sum(r * vi for r, vi in zip(row, v)) for row in rho]


def pair_commit(seed, rho, kappa):
    t = proj(rho, prg(seed, "pair"))
    return vec("tau", t) + gen("r", scalar(seed, "r_pair")) + gen("h2", scalar(f"{seed}/{kappa}", "beta"))


def self_commit(b, rho, kappa):
    t = proj(rho, prg(b, "self"))
    return vec("tau", t) + gen("r", scalar(b, "r_self")) + gen("h2", scalar(f"{b}/{kappa}", "sigma"))


def bind_respond(cl, rho, kappa, Y, lie=None):
    S = self_commit(cl.b, rho, kappa)
    P = {v: pair_commit(cl.seeds[v], rho, kappa) for v in cl.peers}
    T = S
    for v in cl.peers:
        T = T + P[v] * (cl.sgn(v) % ELL)
    tau = [centred(T.get(("tau", j), 0)) for j in range(J_PROJ)]
    px = proj(rho, cl.x)
    num = [px[j] + tau[j] - Y[j] for j in range(J_PROJ)]
    omega = [n // 2**B_BITS if n % 2**B_BITS == 0 else n * inv(2**B_BITS) % ELL for n in num]
    g2 = [RNG.randrange(-(2**PHI) * 10**6, 2**PHI * 10**6) for _ in range(LAM2)]
    W = vec("omega", omega) + vec("ghl2", g2) + gen("h2", rnd())
    resp = dict(S=S, P=P, W=W, omega=omega, g2=g2)
    if lie:
        lie(resp, cl, rho, kappa, Y)
    return resp


LIN_PAD = {("lpad", i) for i in range(8)}  # the linear proof's own padding generators (F1)
WIP_PAD_G = {("G", p) for p in range(N, N_PAD)}  # control: padding on the WIP's G_p instead


def bind_verify(cl, resp, rho, Y, v1=False, lin_pad=frozenset(LIN_PAD)):
    """v1=True: the first design's composition (one sum C + T + W, no Laurent weights).
    lin_pad: generators the (padded) linear proof accepts with coefficient 0."""
    T = resp["S"]
    for v in cl.peers:
        T = T + resp["P"][v] * (cl.sgn(v) % ELL)
    W = resp["W"]
    R2 = [[RNG.choice((-1, 0, 0, 1)) for _ in range(J_PROJ)] for _ in range(LAM2)]
    om = [centred(W.get(("omega", j), 0)) for j in range(J_PROJ)]
    g2 = [centred(W.get(("ghl2", k), 0)) for k in range(LAM2)]
    z2 = [sum(R2[k][j] * om[j] for j in range(J_PROJ)) + g2[k] for k in range(LAM2)]
    z2max = (2**PHI + 1) * 10**6
    if any(abs(zk) > z2max for zk in z2):
        return False, "GHL on omega"
    e, c, c2, c3, zeta = rnd(), rnd(), rnd(), rnd(), rnd()
    if v1:
        e = zeta = 1
    cj = [pow(c, j + 1, ELL) for j in range(J_PROJ)]
    ck = [pow(c2, k + 1, ELL) for k in range(LAM2)]
    ei, ei2 = inv(e), inv(e * e % ELL)
    coef = {}
    for i in range(D):  # on K_i, read as equal G_i and H_i parts
        coef[("K", i)] = sum(cj[j] * rho[j][i] for j in range(J_PROJ)) % ELL
    coef[("h", 0)] = c3
    for j in range(J_PROJ):
        coef[("tau", j)] = ei * cj[j] % ELL
        coef[("omega", j)] = ei2 * (sum(ck[k] * R2[k][j] for k in range(LAM2)) - 2**B_BITS * cj[j]) % ELL
    coef[("r", 0)] = -ei * c3 % ELL
    for k in range(LAM2):
        coef[("ghl2", k)] = ei2 * ck[k] % ELL
    t = (sum(cj[j] * Y[j] for j in range(J_PROJ)) + sum(ck[k] * z2[k] for k in range(LAM2))) % ELL
    Q = cl.C + T * e + W * (e * e % ELL) + gen("f0", t * zeta)
    # ideal linear proof: opening over (K, h, tau, r, omega, ghl2) + h2 + f0, <o, coef> = f0/zeta
    o = {}
    for (name, i), val in Q.items():
        if (name, i) in lin_pad:
            continue  # a padded slot: coefficient 0 in the linear form
        if name in ("G", "H"):
            other = Q.get(("H" if name == "G" else "G", i), 0)
            if other != val:
                return False, "linear: unequal G and H parts"
            o[("K", i)] = val
        elif name in ("h", "tau", "r", "omega", "ghl2"):
            o[(name, i)] = val
        elif name not in ("h2", "f0"):
            return False, "linear: component outside the basis"
    lhs = sum(coef.get(k, 0) * v for k, v in o.items()) % ELL
    if lhs != Q.get(("f0", 0), 0) * inv(zeta) % ELL:
        return False, "linear: relation fails"
    return True, "accepted"


# ---------------------------------------------------------------- checks
FAIL = []


def check(name, got, want):
    ok = got == want
    print(("ok  " if ok else "FAIL"), name, "->", got)
    if not ok:
        FAIL.append(name)


def small_x():
    return [RNG.randrange(-5, 6) for _ in range(D)]


# A: norm argument
check("A honest", norm_verify(norm_prove(small_x()))[0], True)
big = [15] * D  # norm^2 = 1800 > 400
check("A oversized", norm_verify(norm_prove(big))[0], False)


def r1a(st):  # sigma*g0 in C, claim s small
    x = st["x"]
    sigma = sum(xi * xi for xi in x) - 0
    st["C"] = st["C"] + gen("g0", sigma)
    st["V"] = gen("h", rnd())  # value 0


check("A R1(a) g0 junk in C, s = 0", norm_verify(norm_prove(big, tamper=r1a))[0], False)


def r1a_m(st):  # same junk in M instead
    x = st["x"]
    st["M"] = st["M"] + gen("g0", sum(xi * xi for xi in x))
    st["V"] = gen("h", rnd())


check("A R1(a) g0 junk in M, s = 0", norm_verify(norm_prove(big, tamper=r1a_m))[0], False)


def shift_x_in_m(st):  # C commits big x; M carries -big+small on G and H so the WIP sees small
    small = [1] * D
    delta = [s_ - b_ for s_, b_ in zip(small, st["x"])]
    st["M"] = st["M"] + K(delta) * inv(1)  # weighted by eps in P'; cheater cannot cancel it
    st["V"] = gen("g0", sum(v * v for v in small)) + gen("h", rnd())


check("A x shifted through M", norm_verify(norm_prove(big, tamper=shift_x_in_m))[0], False)


def combined_z(st, R):  # the shifting cheater's best z: from the x it wants the WIP to see
    x = [centred((st["C"] + st["M"]).get(("G", i), 0)) for i in range(D)]
    g = [centred(st["M"].get(("G", D + k), 0)) for k in range(LAMBDA)]
    return [sum(R[k][i] * x[i] for i in range(D)) + g[k] for k in range(LAMBDA)]


def shift_x_in_m_best(st):
    shift_x_in_m(st)
    st["z_fn"] = combined_z


check("A x shifted through M, best z", norm_verify(norm_prove(big, tamper=shift_x_in_m_best))[0], False)
check("A control: the same attack passes the first design's composition",
      norm_verify(norm_prove(big, tamper=shift_x_in_m_best), v1=True)[0], True)
check("A control: R1(a) passes the first design's composition",
      norm_verify(norm_prove(big, tamper=r1a), v1=True)[0], True)


def unequal_gh(st):  # G-part big, H-part zero: <a,b> = 0
    x = st["x"]
    st["C"] = vec("G", x) + gen("h", rnd())
    st["V"] = gen("h", rnd())


check("A unequal G and H parts", norm_verify(norm_prove(big, tamper=unequal_gh))[0], False)


def wrap(st):  # x0 = i, x1 = 1 with i^2 = -1 mod ELL: <x,x> = 0 mod ELL
    i = pow(2, (ELL - 1) // 4, ELL)
    assert i * i % ELL == ELL - 1
    x = [i, 1] + [0] * (D - 2)
    st["C"] = K(x) + gen("h", rnd())
    st["V"] = gen("h", rnd())


check("A wrap mod ELL (caught by GHL)", norm_verify(norm_prove(big, tamper=wrap))[1], "GHL: |z| too large")


# F1 (review 2): the padded positions [N, N_PAD) of the norm WIP
def pad_attack(st):  # review2_checks.py F1: 1 on G_N, s - <x, x> on H_N, claim s = 100
    st["C"] = st["C"] + at("G", N, 1) + at("H", N, 100 - sum(t * t for t in st["x"]))
    st["V"] = gen("g0", 100) + gen("h", rnd())


check("F1 honest x passes the padded verifier (padding pinned on both sides)",
      norm_verify(norm_prove(small_x()))[0], True)
check("F1 control: the padded-position attack passes when the padding is unconstrained",
      norm_verify(norm_prove(big, tamper=pad_attack), pin="none")[0], True)
check("F1 padded-position attack (||x||^2 = 1800, bound 400) rejected by the fixed design",
      norm_verify(norm_prove(big, tamper=pad_attack))[1], "WIP: inner product does not match")
check("F1 ... and by the H-side pin alone (review 2's fix)",
      norm_verify(norm_prove(big, tamper=pad_attack), pin="h")[0], False)


def pad_junk_everywhere(st):  # junk on every padded G and H of C_u and of M_u, s claimed small
    for p in range(N, N_PAD):
        st["C"] = st["C"] + at("G", p, rnd()) + at("H", p, rnd())
        st["M"] = st["M"] + at("G", p, rnd()) + at("H", p, rnd())
    st["V"] = gen("g0", 100) + gen("h", rnd())


check("F1 junk on every padded G and H of C_u and M_u: rejected (20 draws)",
      any(norm_verify(norm_prove(big, tamper=pad_junk_everywhere))[0] for _ in range(20)), False)


def pad_g_only(st):  # G-side junk only: adds nothing to <a, b>, but C_u no longer opens on K, h
    st["C"] = st["C"] + at("G", N + 1, 7)


check("F1 G-only junk in C_u's padding: passes the H-only pin (harmless to the norm)",
      norm_verify(norm_prove(small_x(), tamper=pad_g_only), pin="h")[0], True)
check("F1 G-only junk in C_u's padding: rejected at upload with both sides pinned",
      norm_verify(norm_prove(small_x(), tamper=pad_g_only))[0], False)


# B and §6: a complete-graph round of 5 clients
def run_round(xs, cheat=None, masked=None, lie=None):
    n = len(xs)
    ids = list(range(1, n + 1))
    cls = [Client(u, xs[u - 1], [v for v in ids if v != u]) for u in ids]
    for cl in cls:
        cl.upload(masked.get(cl.u) if masked else None)
    kappa = RNG.getrandbits(64)
    rho = [[RNG.randrange(2) for _ in range(D)] for _ in range(J_PROJ)]
    out = {}
    resps = {}
    for cl in cls:
        Y = proj(rho, cl.y)
        resp = bind_respond(cl, rho, kappa, Y, lie=(lie or {}).get(cl.u))
        resps[cl.u] = resp
        out[cl.u] = bind_verify(cl, resp, rho, Y)
    # pair comparison
    disputes = set()
    for cl in cls:
        for v in cl.peers:
            if resps[cl.u]["P"][v] != resps[v]["P"][cl.u]:
                disputes.add(tuple(sorted((cl.u, v))))
    # safety net over the clients whose proofs verified and who are in no dispute
    in_dispute = {u for p in disputes for u in p}
    u3 = [cl for cl in cls if out[cl.u][0] and cl.u not in in_dispute]
    return out, disputes, u3, cls


def release_and_net(u3, cls):
    ids3 = {cl.u for cl in u3}
    S = [0] * D
    rsum = 0
    Csum = Pt()
    for cl in u3:
        S = [(a + b) % 2**B_BITS for a, b in zip(S, cl.y)]
        S = [(a - b) % 2**B_BITS for a, b in zip(S, prg(cl.b, "self"))]
        rsum += scalar(cl.b, "r_self")
        for v in cl.peers:
            if v not in ids3:
                S = [(a - cl.sgn(v) * b) % 2**B_BITS for a, b in zip(S, prg(cl.seeds[v], "pair"))]
                rsum += cl.sgn(v) * scalar(cl.seeds[v], "r_pair")
        Csum = Csum + cl.C
    lifted = [a - 2**B_BITS if a >= 2 ** (B_BITS - 1) else a for a in S]
    net_ok = Csum == K(lifted) + gen("h", rsum)
    return lifted, net_ok


xs = [small_x() for _ in range(5)]
out, disp, u3, cls = run_round(xs)
check("B honest round: all proofs accepted", all(v[0] for v in out.values()), True)
rel, net = release_and_net(u3, cls)
check("B honest round: released = sum, safety net passes", (rel == [sum(c) for c in zip(*xs)], net), (True, True))

# inconsistent: commit x, mask x' (client 2)
xp = [v + 1 for v in xs[1]]
out, disp, u3, cls = run_round(xs, masked={2: xp})
check("B inconsistent upload rejected", (out[2][0], all(out[u][0] for u in out if u != 2)), (False, True))
rel, net = release_and_net(u3, cls)
want = [sum(x[i] for j, x in enumerate(xs) if j != 1) for i in range(D)]
check("B inconsistent: the others' sum is exact, safety net passes", (rel == want, net), (True, True))


def lie_with(extra_fn):
    """A cheater that masks x + D, keeps honest mask commitments, computes small carries as if
    the extra mass it puts into W counted, and puts that mass into W (first design's R1 b/c)."""

    def f(resp, cl, rho, kappa, Y):
        T = resp["S"]
        for v in cl.peers:
            T = T + resp["P"][v] * (cl.sgn(v) % ELL)
        tau = [centred(T.get(("tau", j), 0)) for j in range(J_PROJ)]
        px = proj(rho, cl.x)
        extra_pt, extra_proj = extra_fn(rho)
        num = [px[j] + tau[j] + extra_proj[j] - Y[j] for j in range(J_PROJ)]
        assert all(n_ % 2**B_BITS == 0 for n_ in num)
        omega = [n_ // 2**B_BITS for n_ in num]
        resp["W"] = vec("omega", omega) + vec("ghl2", resp["g2"]) + gen("h2", rnd()) + extra_pt

    return f


DL = [1] + [0] * (D - 1)


def masked_D(x):
    return [a + b for a, b in zip(x, DL)]


out, disp, u3, cls = run_round(xs, masked={3: masked_D(xs[2])},
                               lie={3: lie_with(lambda rho: (vec("tau", proj(rho, DL)), proj(rho, DL)))})
check("B R1(b) tau mass hidden in W rejected", out[3], (False, "linear: relation fails"))
out, disp, u3, cls = run_round(xs, masked={4: masked_D(xs[3])},
                               lie={4: lie_with(lambda rho: (K(DL), proj(rho, DL)))})
check("B R1(c) x changed through W rejected", out[4], (False, "linear: relation fails"))


def control_v1(uid, masked, lie):
    ids_ = list(range(1, 6))
    cls_ = [Client(u, xs[u - 1], [v for v in ids_ if v != u]) for u in ids_]
    for cl_ in cls_:
        cl_.upload(masked if cl_.u == uid else None)
    rho_ = [[RNG.randrange(2) for _ in range(D)] for _ in range(J_PROJ)]
    cl_ = cls_[uid - 1]
    Y_ = proj(rho_, cl_.y)
    resp_ = bind_respond(cl_, rho_, 11, Y_, lie=lie)
    return bind_verify(cl_, resp_, rho_, Y_, v1=True)[0]


check("B control: R1(b) passes the first design's composition",
      control_v1(3, masked_D(xs[2]), lie_with(lambda rho: (vec("tau", proj(rho, DL)), proj(rho, DL)))), True)
check("B control: R1(c) passes the first design's composition",
      control_v1(4, masked_D(xs[3]), lie_with(lambda rho: (K(DL), proj(rho, DL)))), True)
out, disp, u3, cls = run_round(xs, masked={4: masked_D(xs[3])})
check("B D added, no compensation: rejected", out[4][0], False)


def wrong_pair(resp, cl, rho, kappa, Y):  # lie on the pair with client 1
    resp["P"][1] = resp["P"][1] + gen("tau", 1)


out, disp, u3, cls = run_round(xs, lie={5: wrong_pair})
check("B wrong pair commitment: dispute on (1, 5)", (1, 5) in disp, True)

# wrong blinding in C (abort attempt through the safety net, §18 C6)
ids = list(range(1, 6))
cls = [Client(u, xs[u - 1], [v for v in ids if v != u]) for u in ids]
for cl in cls:
    cl.upload()
cls[1].C = cls[1].C + gen("h", 12345)
rho = [[RNG.randrange(2) for _ in range(D)] for _ in range(J_PROJ)]
Y = proj(rho, cls[1].y)
resp = bind_respond(cls[1], rho, 7, Y)
check("B wrong blinding in C_u rejected by B2", bind_verify(cls[1], resp, rho, Y)[0], False)

# F1, round level: client 2's C_u carries G-only junk on a padded WIP position (the H-only pin
# lets it through the norm argument). The linear proof pads with generators of its own, so the
# binding argument rejects it; padded on the WIP's G_p instead, it would pass the binding and
# make the safety net fire: a lone cheater's abort.
ids = list(range(1, 6))
cls = [Client(u, xs[u - 1], [v for v in ids if v != u]) for u in ids]
for cl in cls:
    cl.upload()
cls[1].C = cls[1].C + at("G", N + 1, 7)
rho = [[RNG.randrange(2) for _ in range(D)] for _ in range(J_PROJ)]
Y = proj(rho, cls[1].y)
resp = bind_respond(cls[1], rho, 8, Y)
check("F1 padded G junk in C_u: binding rejects it (linear proof pads on its own generators)",
      bind_verify(cls[1], resp, rho, Y), (False, "linear: unequal G and H parts"))
check("F1 control: padded on the WIP's G_p, the binding passes ...",
      bind_verify(cls[1], resp, rho, Y, lin_pad=WIP_PAD_G)[0], True)
check("F1 control: ... and the safety net fires (an abort by one client)",
      release_and_net(cls, cls)[1], False)


# colluders 2 and 3: consistent lie on their pair shifting D between them (mass shift)
xs2 = [small_x() for _ in range(5)]
Dlt = [3] + [0] * (D - 1)
m2 = [a + b for a, b in zip(xs2[1], Dlt)]
m3 = [a - b for a, b in zip(xs2[2], Dlt)]
ids = list(range(1, 6))
cls = [Client(u, xs2[u - 1], [v for v in ids if v != u]) for u in ids]
for cl in cls:
    cl.upload({2: m2, 3: m3}.get(cl.u))
rho = [[RNG.randrange(2) for _ in range(D)] for _ in range(J_PROJ)]
pD = proj(rho, Dlt)
res, resps = {}, {}
for cl in cls:
    Yc = proj(rho, cl.y)
    resp = bind_respond(cl, rho, 9, Yc)
    if cl.u in (2, 3):
        # both add the same mass to the pair commitment P_23 (sgn(2,3) = +1, sgn(3,2) = -1)
        peer = 3 if cl.u == 2 else 2
        resp["P"][peer] = resp["P"][peer] + vec("tau", pD)
        lie_with(lambda rho_: (Pt(), [0] * J_PROJ))(resp, cl, rho, 9, Yc)
    resps[cl.u] = resp
    res[cl.u] = bind_verify(cl, resp, rho, Yc)[0]
check("K1 colluders' consistent pair lie passes individually", all(res.values()), True)
check("K1 and their pair commitments agree (no dispute)", resps[2]["P"][3] == resps[3]["P"][2], True)
rel, net = release_and_net(cls, cls)
check("K1 released = sum of committed x (mass shift harmless), net passes",
      (rel == [sum(c) for c in zip(*xs2)], net), (True, True))
# the same colluders, but 3 leaves after the challenge: 2's lie is now on a dropped pair
rel, net = release_and_net([c for c in cls if c.u != 3], cls)
want = [sum(x[i] for j, x in enumerate(xs2) if j != 2) for i in range(D)]
check("K3 if nobody checked: the sum is off by D and the safety net fires", (rel == want, net), (False, False))
check("K3 the key-half check (§8.5) finds client 2's lie on the pair with 3",
      resps[2]["P"][3] != pair_commit(cls[1].seeds[3], rho, 9), True)
rel, net = release_and_net([c for c in cls if c.u not in (2, 3)], cls)
want = [sum(x[i] for j, x in enumerate(xs2) if j not in (1, 2)) for i in range(D)]
check("K3 after excluding 2 as well: exact sum of the rest, net passes", (rel == want, net), (True, True))


# F2 and F8 (review 2): the exclusion evidence of VALIDATION.md §8.5 as revised. Mask keys are
# modelled in a prime-order DH group (X25519 stands behind it in the design); P(s, kappa) and the
# signed hashes by SHA-256. An entry is (id, pk); its leaf is its hash.
import hashlib  # noqa: E402

DH_P, DH_G = 2**127 - 1, 3


def h256(*parts):
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def keypair(tag):
    sk = int(h256("sk", tag), 16) % (DH_P - 1) or 1
    return sk, pow(DH_G, sk, DH_P)


def seed_of(sk, pk_other, u, v):
    return h256("pair-seed", min(u, v), max(u, v), pow(pk_other, sk, DH_P))


def P_of(seed, kappa):
    return h256("P", seed, kappa)


def leaf(entry):
    return h256("leaf", *entry)


def accused(u, statements, entry_w, sk_w, pk_u, holder_kappa, rule):
    """statements: u's signed (view: {v: leaf}, hashes: {v: h_uv}, kappa, P: {v: P_uv}).
    rule "review": review 2's F2 wording with the holder's own kappa (as §8.5 v2 left open);
    "fixed": sk_w must match the entry u signed in its view, and P is recomputed with the kappa
    inside u's signed response, which must equal the holder's own."""
    w, pk_w = entry_w
    if pow(DH_G, sk_w, DH_P) != pk_w:
        return False  # the rebuilt key does not belong to the entry: no evidence
    kappa = holder_kappa
    if rule == "fixed":
        if statements["view"].get(w) != leaf(entry_w) or statements["kappa"] != holder_kappa:
            return False
        kappa = statements["kappa"]
    s = seed_of(sk_w, pk_u, u, w)
    return h256("hash", s) != statements["hashes"][w] or P_of(s, kappa) != statements["P"][w]


def statements_of(u, w, entry_w_seen, seed_used, kappa):
    return dict(view={w: leaf(entry_w_seen)}, hashes={w: h256("hash", seed_used)}, kappa=kappa,
                P={w: P_of(seed_used, kappa)})


sk2, pk2 = keypair(2)
sk3, pk3 = keypair(3)
# colluders 2 and 3 sign the hash of a fake seed and mask with it; 3 leaves (review 2, F2)
st2 = statements_of(2, 3, (3, pk3), "fake-seed-of-2-and-3", 77)
check("F2 colluder's lie on a fake shared seed: excluded on the dropped peer's rebuilt key",
      accused(2, st2, (3, pk3), sk3, pk2, 77, "fixed"), True)
# an honest client 2 with an honest dropped peer 3: never accused
st2h = statements_of(2, 3, (3, pk3), seed_of(sk2, pk3, 2, 3), 77)
check("F2 no evidence against an honest client",
      accused(2, st2h, (3, pk3), sk3, pk2, 77, "fixed"), False)
# corrupt 3 signed two key entries; a malicious server showed honest 2 entry A and presents
# entry B with B's key to the holders (the holder may not be 3's neighbour: it has no view of 3)
skB, pkB = keypair("3-second-entry")
check("F2 refinement control: evidence checked against a key entry u never saw frames honest u",
      accused(2, st2h, (3, pkB), skB, pk2, 77, "review"), True)
check("F2 refinement: the entry must be the one in u's signed view: honest u not accused",
      accused(2, st2h, (3, pkB), skB, pk2, 77, "fixed"), False)
# F8: a malicious server sent honest 2 another kappa (78); the holder's own is 77
st2k = statements_of(2, 3, (3, pk3), seed_of(sk2, pk3, 2, 3), 78)
check("F8 control: recomputing with the holder's own kappa frames an honest client",
      accused(2, st2k, (3, pk3), sk3, pk2, 77, "review"), True)
check("F8 fix: a response under another kappa is no evidence",
      accused(2, st2k, (3, pk3), sk3, pk2, 77, "fixed"), False)

sys.exit(1 if FAIL else 0)
