"""Concrete attacks of docs/validation/review2.md, in the style of toy_model.py (not an implementation).

Points are modelled by their openings over independent generators (the extractor's view under
discrete log); the zk-WIP is its ideal functionality; protocol steps (hashes, evidence, disputes,
the safety net) are modelled exactly as VALIDATION.md v2 words them. Each check prints the
attack's outcome as the design states it ("as written") and, where a fix is proposed, with the
fix. Run: python3 docs/validation/review2_checks.py   (exits 1 if an expectation fails)

Self-contained on purpose: toy_model.py runs its own checks at import time.
"""

import hashlib
import random
import sys

ELL = 2**252 + 27742317777372353535851937790883648493
RNG = random.Random(20261203 + 2)
FAIL = []


def check(name, got, want):
    ok = got == want
    print(("ok  " if ok else "FAIL"), name, "->", got)
    if not ok:
        FAIL.append(name)


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


def vec(name, values, start=0):
    return Pt({(name, start + i): v % ELL for i, v in enumerate(values) if v % ELL})


def gen(name, c=1, i=0):
    return Pt({(name, i): c % ELL}) if c % ELL else Pt()


def K(xs):
    return vec("G", xs) + vec("H", xs)


# =====================================================================================
# F1. Padding the norm WIP to a power of two with unconstrained positions (arguments.md A.3,
#     VALIDATION.md §7.1/§14.2: "odd lengths handled per round or padded").
# =====================================================================================
D, LAMBDA, PHI, B_ENC = 8, 20, 20, 20  # N = 28, padded to 32
N = D + LAMBDA
N_PAD = 32
MX = int(D**0.5 + 1) * B_ENC
ZMAX = (2**PHI + 1) * MX


def norm_commit(x, s_claimed, pad_junk=None):
    g = [RNG.randrange(-(2**PHI) * MX, 2**PHI * MX + 1) for _ in range(LAMBDA)]
    C = K(x) + gen("h", rnd())
    if pad_junk:
        C = C + pad_junk
    M = vec("G", g, start=D) + gen("h", rnd())
    V = gen("g0", s_claimed) + gen("h", rnd())
    return dict(x=x, g=g, C=C, M=M, V=V)


def norm_verify_padded(st, pin_padding):
    """The verifier of arguments.md A.3 on vectors of length N_PAD. pin_padding=False: the
    padded positions get no public term (the natural way to pad); True: the v' block of A.2 is
    extended over [N, N_PAD), pinning the H-side of the padding to zero (proposed fix)."""
    C, M, V = st["C"], st["M"], st["V"]
    if set(V) - {("g0", 0), ("h", 0)}:
        return False
    if not 0 <= B_ENC**2 - centred(V.get(("g0", 0), 0)) < 2**64:
        return False
    R = [[RNG.choice((-1, 0, 0, 1)) for _ in range(D)] for _ in range(LAMBDA)]
    x = [centred(C.get(("G", i), 0)) for i in range(D)]
    z = [sum(R[k][i] * x[i] for i in range(D)) + st["g"][k] for k in range(LAMBDA)]
    if any(abs(zk) > ZMAX for zk in z):
        return False
    eps, c, v, vp, mu, nu, zeta = (rnd() for _ in range(7))
    ck = [pow(c, k + 1, ELL) for k in range(LAMBDA)]
    vi = [pow(v, i + 1, ELL) for i in range(D)]
    npv = N_PAD - D if pin_padding else LAMBDA
    vpk = [pow(vp, k + 1, ELL) for k in range(npv)]
    a = [sum(ck[k] * R[k][i] for k in range(LAMBDA)) % ELL for i in range(D)]
    a += [inv(eps) * ck[k] % ELL for k in range(LAMBDA)] + [0] * (N_PAD - N)
    w = vi + [0] * (N_PAD - D)
    wp = vi + vpk + [0] * (N_PAD - D - npv)
    zhat = sum(ck[k] * z[k] for k in range(LAMBDA)) % ELL
    Gam = (mu * zhat - nu * mu * sum(p * q for p, q in zip(wp, a)) - nu * nu * sum(q * q for q in vi)) % ELL
    P = C + M * eps - vec("G", wp) * nu + vec("H", a) * mu + vec("H", w) * nu + V * zeta + gen("g0", Gam * zeta)
    if set(k[0] for k in P) - {"G", "H", "g0", "h"} or any(k[1] >= N_PAD for k in P if k[0] in "GH"):
        return False
    ast = [P.get(("G", i), 0) for i in range(N_PAD)]
    bst = [P.get(("H", i), 0) for i in range(N_PAD)]
    return sum(p * q for p, q in zip(ast, bst)) % ELL == P.get(("g0", 0), 0) * inv(zeta) % ELL


big = [15] * D  # ||x||^2 = 1800 > B^2 = 400
small = [RNG.randrange(-5, 6) for _ in range(D)]
check("F1 control: honest small x passes the padded verifier",
      norm_verify_padded(norm_commit(small, sum(t * t for t in small)), pin_padding=False), True)
check("F1 control: oversized x with honest commitments fails",
      norm_verify_padded(norm_commit(big, 1800), pin_padding=False), False)
# Attack: put (1 on G_28, s - <x,x> on H_28) into C_u; claim s = 100.
junk = gen("G", 1, N) + gen("H", 100 - 1800, N)
check("F1 ATTACK: oversized x (||x||^2 = 1800, bound 400) passes when padding is unconstrained",
      norm_verify_padded(norm_commit(big, 100, pad_junk=junk), pin_padding=False), True)
check("F1 fix: the same commitment fails when v' also covers the padding",
      norm_verify_padded(norm_commit(big, 100, pad_junk=junk), pin_padding=True), False)
check("F1 fix: honest x still passes with the padding pinned",
      norm_verify_padded(norm_commit(small, sum(t * t for t in small)), pin_padding=True), True)


# =====================================================================================
# F2. Two colluding neighbours agree on a FAKE pair-seed hash, mask with the fake seed, one
#     leaves after the challenge: the §8.5 evidence cannot be formed, the liar stays, the
#     safety net aborts the round (a deterministic cheaters' abort).
# =====================================================================================
BB, DD, JJ = 8, 8, 16
MOD = 2**BB


def prg(seed, tag):
    r = random.Random(f"{seed}/{tag}")
    return [r.randrange(MOD) for _ in range(DD)]


def scal(seed, tag):
    return random.Random(f"{seed}/{tag}/scalar").randrange(ELL)


def sha(seed):
    return hashlib.sha256(f"pair-seed-hash/{seed}".encode()).hexdigest()


def true_seed(u, v):  # stands for HKDF(X25519(sk_u, pk_v)); derivable from either secret key
    return f"s{min(u, v)}-{max(u, v)}"


def proj(rho, v):
    return [sum(r * x for r, x in zip(row, v)) for row in rho]


def pair_commit(seed, rho, kappa):
    return vec("tau", proj(rho, prg(seed, "pair"))) + gen("r", scal(seed, "r_pair")) + gen(
        "h2", scal(f"{seed}/{kappa}", "beta"))


def sgn(u, v):
    return 1 if u < v else -1


def run_fake_hash_round(fixed_evidence):
    ids = [1, 2, 3, 4, 5]
    xs = {u: [RNG.randrange(-5, 6) for _ in range(DD)] for u in ids}
    used = {}  # the seed each client really uses for each pair
    signed_hash = {}  # (u, v) -> the hash u signed at the share stage
    for u in ids:
        for v in ids:
            if u != v:
                s = "fake-seed-chosen-by-2-and-3" if {u, v} == {2, 3} else true_seed(u, v)
                used[(u, v)] = s
                signed_hash[(u, v)] = sha(s)
    # share stage: the server compares signed hashes; all equal, nothing is cut
    assert all(signed_hash[(u, v)] == signed_hash[(v, u)] for u in ids for v in ids if u != v)
    y, C = {}, {}
    for u in ids:
        m = prg(f"b{u}", "self")
        r = scal(f"b{u}", "r_self")
        for v in ids:
            if v != u:
                m = [a + sgn(u, v) * p for a, p in zip(m, prg(used[(u, v)], "pair"))]
                r += sgn(u, v) * scal(used[(u, v)], "r_pair")
        y[u] = [(a + b) % MOD for a, b in zip(xs[u], m)]
        C[u] = K(xs[u]) + gen("h", r % ELL)
    kappa = 77
    rho = [[RNG.randrange(2) for _ in range(DD)] for _ in range(JJ)]
    P = {(u, v): pair_commit(used[(u, v)], rho, kappa) for u in ids for v in ids if u != v}
    # every binding relation B1 holds over Z for every client (each tau matches its masking)
    for u in ids:
        tau = proj(rho, prg(f"b{u}", "self"))
        for v in ids:
            if v != u:
                tau = [t + sgn(u, v) * p for t, p in zip(tau, proj(rho, prg(used[(u, v)], "pair")))]
        lhs = [a + b - c for a, b, c in zip(proj(rho, xs[u]), tau, proj(rho, y[u]))]
        assert all(t % MOD == 0 for t in lhs)
    assert all(P[(u, v)] == P[(v, u)] for u in ids for v in ids if u != v)  # no dispute
    # client 3 leaves after answering nothing more (or fails its binding): U3 = {1, 2, 4, 5}
    u3 = [1, 2, 4, 5]
    dropped = 3
    excluded = []
    for u in u3:  # §8.5: key half; sk_3 rebuilt, s_u3 derived, P_u3 checked
        s = true_seed(u, dropped)
        if pair_commit(s, rho, kappa) != P[(u, dropped)]:
            if fixed_evidence:
                # proposed fix: the evidence is sk_3 (checked against pk_3) and u's signed
                # statements; a holder derives s itself and accepts if u's signed hash OR P
                # disagrees with it
                valid = sha(s) != signed_hash[(u, dropped)] or pair_commit(s, rho, kappa) != P[(u, dropped)]
            else:
                # as written: "s_uv with SHA-256(...s_uv) = h_uv and P(s_uv, kappa) != P_uv"
                valid = sha(s) == signed_hash[(u, dropped)] and pair_commit(s, rho, kappa) != P[(u, dropped)]
            if valid:
                excluded.append(u)
    for u in excluded:
        u3.remove(u)
    gone = [v for v in ids if v not in u3]
    S = [0] * DD
    rho_sum = 0
    Csum = Pt()
    for u in u3:
        S = [(a + b - c) % MOD for a, b, c in zip(S, y[u], prg(f"b{u}", "self"))]
        rho_sum += scal(f"b{u}", "r_self")
        for v in gone:  # the server removes dropped-pair masks with the TRUE seed
            S = [(a - sgn(u, v) * p) % MOD for a, p in zip(S, prg(true_seed(u, v), "pair"))]
            rho_sum += sgn(u, v) * scal(true_seed(u, v), "r_pair")
        Csum = Csum + C[u]
    lifted = [a - MOD if a >= MOD // 2 else a for a in S]
    net_ok = Csum == K(lifted) + gen("h", rho_sum % ELL)
    exact = lifted == [sum(xs[u][i] for u in u3) for i in range(DD)]
    return excluded, net_ok, exact


exc, net, exact = run_fake_hash_round(fixed_evidence=False)
check("F2 ATTACK (as written): the liar's evidence is invalid, nobody is excluded", exc, [])
check("F2 ATTACK (as written): the safety net fires, the round aborts", (net, exact), (False, False))
exc, net, exact = run_fake_hash_round(fixed_evidence=True)
check("F2 fix (evidence = sk of the dropped peer): client 2 excluded", exc, [2])
check("F2 fix: exact sum of the rest, safety net passes", (net, exact), (True, True))


def honest_cannot_be_framed_by_fixed_evidence():
    rho = [[RNG.randrange(2) for _ in range(DD)] for _ in range(JJ)]
    s = true_seed(1, 3)
    P13, h13 = pair_commit(s, rho, 5), sha(s)
    return sha(s) != h13 or pair_commit(s, rho, 5) != P13


check("F2 fix: no evidence exists against an honest client", honest_cannot_be_framed_by_fixed_evidence(), False)


# =====================================================================================
# F3. flood_bits and ghl_rows are round parameters the server chooses (§15); a client that
#     does not check them lets the server read x out of z = R x + g.
# =====================================================================================
def solve(A, b):
    n = len(b)
    M = [row[:] + [bb] for row, bb in zip(A, b)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(M[r][col]))
        M[col], M[piv] = M[piv], M[col]
        for r in range(n):
            if r != col:
                f = M[r][col] / M[col][col]
                M[r] = [a - f * c for a, c in zip(M[r], M[col])]
    return [M[i][n] / M[i][i] for i in range(n)]


def recover_from_z(x, rows, phi):
    mx = int(D**0.5 + 1) * B_ENC
    R = [[RNG.choice((-1, 0, 0, 1)) for _ in range(D)] for _ in range(rows)]
    z = [sum(r * xi for r, xi in zip(Rk, x)) + RNG.randrange(-(2**phi) * mx, 2**phi * mx + 1) for Rk in R]
    RtR = [[sum(Rk[i] * Rk[j] for Rk in R) for j in range(D)] for i in range(D)]
    Rtz = [sum(Rk[i] * zk for Rk, zk in zip(R, z)) for i in range(D)]
    est = solve([[float(v) for v in row] for row in RtR], [float(v) for v in Rtz])
    return [round(e) for e in est] == x


x_victim = [RNG.randrange(-7, 8) for _ in range(D)]
check("F3 ATTACK: flood_bits = 0, ghl_rows = 65535 (u16 max): the server reads x from z",
      recover_from_z(x_victim, 65535, 0), True)
check("F3 control: flood_bits = 56 (the design's value), same rows: x not recovered",
      recover_from_z(x_victim, 65535, 56), False)


# =====================================================================================
# F4. Unsigned inputs: the bound is on the SIGNED representative, so -1 passes with norm 1
#     and the released unsigned count wraps to 2^b - 1.
# =====================================================================================
honest = [[0] * D for _ in range(4)]
cheat = [-1] + [0] * (D - 1)
check("F4 the cheater's x = (-1, 0, ...) passes the norm proof (padding pinned)",
      norm_verify_padded(norm_commit(cheat, 1), pin_padding=True), True)
released = [sum(c) % MOD for c in zip(*(honest + [cheat]))]
check("F4 ATTACK: bin 0, where every honest count is 0, is released as 2^b - 1 (read unsigned)",
      released[0], MOD - 1)


# =====================================================================================
# F5. Asymmetric cuts + a dispute rule that treats "no commitment for our pair" as "differs":
#     the server collects every pair seed of the victim and reads its input.
# =====================================================================================
def asymmetric_cut_attack(loose_rule):
    victim, others = 1, [2, 3, 4, 5]
    x = [RNG.randrange(-5, 6) for _ in range(DD)]
    m = prg("b1", "self")
    for v in others:  # the victim was told every hash matched: it masks with all of them
        m = [a + sgn(victim, v) * p for a, p in zip(m, prg(true_seed(victim, v), "pair"))]
    y = [(a + b) % MOD for a, b in zip(x, m)]
    # each neighbour was told the hashes mismatched: it cut the pair, its signed response has no
    # commitment for the victim. The server forwards those responses as DisputeRequests.
    seeds = {}
    for v in others:
        peer_response_has_pair = False
        if loose_rule or peer_response_has_pair:
            seeds[v] = true_seed(victim, v)  # DisputeAnswer {s_uv}
    # U3 = everyone; the victim's neighbours release their shares of b_1 (rule M: S_1 ∩ U3 = 4 >= t)
    est = [(a - b) % MOD for a, b in zip(y, prg("b1", "self"))]
    for v, s in seeds.items():
        est = [(a - sgn(victim, v) * p) % MOD for a, p in zip(est, prg(s, "pair"))]
    est = [a - MOD if a >= MOD // 2 else a for a in est]
    return est == x


check("F5 ATTACK: 'no commitment' read as 'differs': the server recovers the victim's input",
      asymmetric_cut_attack(loose_rule=True), True)
check("F5 fix: answer only if the peer's signed response contains a differing commitment",
      asymmetric_cut_attack(loose_rule=False), False)


# =====================================================================================
# F6. The re-challenge variant (§7.3, J = 41 + ceil(log2(c+1))): colluders that leave AFTER the
#     binding stage (lost dispute, rule E) choose the surviving subset after seeing rho.
# =====================================================================================
def gf2_zero_subset(vectors):
    """Indices of a nonempty subset of GF(2) vectors summing to zero (exists if len > dim)."""
    basis = []  # (vector as int, set of indices)
    for idx, vv in enumerate(vectors):
        cur, comb = vv, {idx}
        for bv, bc in basis:
            if cur ^ bv < cur:
                cur ^= bv
                comb ^= bc
        if cur == 0:
            return sorted(comb)
        basis.append((cur, comb))
        basis.sort(key=lambda t: -t[0])
    return None


J_SMALL, DIM = 8, 16
c = J_SMALL + 1
Ds = []
for u in range(c):  # D_u = 2^(b-1) e_u, fixed before kappa
    Dv = [0] * DIM
    Dv[u] = MOD // 2
    Ds.append(Dv)
rho6 = [[RNG.randrange(2) for _ in range(DIM)] for _ in range(J_SMALL)]
synd = [sum((((sum(r * d for r, d in zip(row, Dv)) % MOD) // (MOD // 2)) << j) for j, row in enumerate(rho6)) for Dv in Ds]
S6 = gf2_zero_subset(synd)
DS = [sum(Ds[u][i] for u in S6) % MOD for i in range(DIM)]
check("F6 ATTACK: with c = J + 1 colluders some surviving subset has D_S != 0 and zero projections",
      (S6 is not None, any(DS), all(sum(r * dd for r, dd in zip(row, DS)) % MOD == 0 for row in rho6)),
      (True, True, True))
# control: the same subset fixed BEFORE rho passes with probability about 2^-J
trials, passed = 4000, 0
for _ in range(trials):
    rr = [[RNG.randrange(2) for _ in range(DIM)] for _ in range(J_SMALL)]
    passed += all(sum(r * dd for r, dd in zip(row, DS)) % MOD == 0 for row in rr)
check("F6 control: a subset fixed before rho passes at about 2^-J (<= 3x 2^-8)", passed <= 3 * trials / 2**J_SMALL, True)

sys.exit(1 if FAIL else 0)
