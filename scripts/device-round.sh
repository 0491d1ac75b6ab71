#!/usr/bin/env bash
# One secagg round with a microcontroller among its clients: builds the Cortex-M firmware
# (devices/cortex-m), starts `secagg server` on loopback and N - 1 host clients, boots the
# firmware in QEMU (netduinoplus2, STM32F405) as the N-th client behind `secagg gateway`, and
# checks the released sum against the plaintext sum of the survivors' inputs (pure Python, from
# rounds/<id>.npy and the survivors in rounds/<id>.json). Exits 0 when the sum is exact and the
# device met the fate its flags call for ("ok" in the JSON).
#
#   scripts/device-round.sh [--json] [--clients N] [--dim D] [--bits B] [--prg chacha|aes]
#                           [--degree K] [--threshold T]
#                           [--kill-at STAGE] [--tamper-at STAGE] [--attack ATTACK]
#   scripts/device-round.sh --kat
#
# Every round is a malicious-model PKI round, the only kind the device takes part in: the
# script provisions identity keys with `secagg keygen` (kept in
# devices/cortex-m/target/device-pki/nN, test keys only), the roster lists the N - 1 host
# clients' keys and the device's (last line, so its id is N), and the firmware is built with
# its key and the roster (SECAGG_DEVICE_IDENTITY, SECAGG_DEVICE_ROSTER; devices/cortex-m/build.rs).
# With 5% assumed dropouts (the device's and the clients' policy), a round must keep
# ⌈0.95 n⌉ survivors: n ≥ 20 lets one client drop, hence the default N = 21 (k = 20).
#
# --prg chacha|aes: the mask PRG the server announces (default chacha: ChaCha20, 5.4x fewer
#   instructions per key-stream byte than software AES on the device).
# --no-build: use the secagg binary already in target/release (the firmware is always built,
#   for --dim).
# --kat: instead of a round, runs the firmware's own checks in QEMU: the known-answer replay of
#   crates/secagg-sim/tests/vectors (every client, whole-input and streamed, byte-identical to
#   the host's), the micro-benchmarks, and the d = 10^4 / 10^5, k = 20 replays of
#   devices/cortex-m/vectors (instructions per stage, RAM).
# --kill-at advertise|share|masked-input|consistency|unmask: QEMU is killed before the device answers that
#   stage; the round must still release the survivors' exact sum.
# --kill-at consistency: killed after uploading, before signing the survivor set.
# --tamper-at STAGE: the gateway flips one bit of the server's message to the device at that
#   stage; the device must refuse (or be dropped), and the round release the others' sum.
# --attack forge-round|substitute-keys|reassign|oversize: a malicious gateway (secagg gateway
#   --attack, built with the secagg-cli feature gateway-attacks, as --tamper-at): it makes up a whole
#   round around the device with Sybil clients, replaces the neighbours' keys in the real
#   round's NeighbourKeys with its Sybils', assigns the device a second round in one boot, or
#   sends it a message over its limit.
#   The device must refuse (its typed reason is in the JSON), the gateway must recover
#   nothing ("attack" in the JSON), and the round release the others' exact sum.
# Installs what it needs (qemu-system-arm with apt-get, the thumbv7em target with rustup).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

JSON=0 CLIENTS=21 DIM=1000 BITS=16 PRG=chacha KILL_AT="" TAMPER_AT="" ATTACK="" KAT=0 BUILD=1 DEGREE="" THRESHOLD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON=1 ;;
    --kat) KAT=1 ;;
    --no-build) BUILD=0 ;;
    --clients) CLIENTS=$2; shift ;;
    --dim) DIM=$2; shift ;;
    --bits) BITS=$2; shift ;;
    --prg) PRG=$2; shift ;;
    --kill-at) KILL_AT=$2; shift ;;
    --tamper-at) TAMPER_AT=$2; shift ;;
    --attack) ATTACK=$2; shift ;;
    --degree) DEGREE=$2; shift ;;
    --threshold) THRESHOLD=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$CLIENTS" -ge 3 ] || { echo "--clients must be at least 3" >&2; exit 2; }
case "$ATTACK" in ""|forge-round|substitute-keys|reassign|oversize) ;;
  *) echo "--attack: forge-round|substitute-keys|reassign|oversize" >&2; exit 2 ;; esac
log() { if [ "$JSON" = 0 ]; then echo "device-round: $*" >&2; fi; }

# --- what it needs -------------------------------------------------------------------------
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  log "installing qemu-system-arm"
  apt-get update -qq >/dev/null && apt-get install -y -qq qemu-system-arm >/dev/null
fi
rustup target list --installed 2>/dev/null | grep -q thumbv7em-none-eabihf \
  || rustup target add thumbv7em-none-eabihf >/dev/null 2>&1

if [ "$KAT" = 1 ]; then
  # The runner in devices/cortex-m/.cargo/config.toml boots each binary in QEMU; a failed
  # check exits QEMU with status 1.
  for bin in kat bench round; do
    echo "=== device $bin ==="
    (cd devices/cortex-m && cargo run -q --release --bin "$bin")
  done
  exit 0
fi

log "building secagg and the firmware (d = $DIM)"
# The attack and tamper hooks exist only in a build with the test feature.
FEATURES=()
if [ -n "$ATTACK$TAMPER_AT" ]; then FEATURES=(--features gateway-attacks); fi
SECAGG=$ROOT/target/release/secagg
if [ ${#FEATURES[@]} -gt 0 ]; then
  # The hooked build gets its own name, and target/release/secagg is rebuilt without the hooks
  # (cargo keeps both artifacts, so the second build only relinks).
  SECAGG=$ROOT/target/release/secagg-attacks
  if [ "$BUILD" = 1 ]; then
    cargo build -q --release -p secagg-cli "${FEATURES[@]}"
    cp "$ROOT/target/release/secagg" "$SECAGG"
    cargo build -q --release -p secagg-cli
  elif [ ! -x "$SECAGG" ]; then
    echo "device-round: $SECAGG is missing: run once without --no-build" >&2; exit 2
  fi
elif [ "$BUILD" = 1 ]; then cargo build -q --release -p secagg-cli; fi
# The round's PKI: test keys, made once per N with `secagg keygen` and kept, so the firmware
# (which embeds the device's key and the roster) is not rebuilt for every run.
PKI=$ROOT/devices/cortex-m/target/device-pki/n$CLIENTS
if [ ! -s "$PKI/roster.txt" ] || [ ! -s "$PKI/device.key" ]; then
  rm -rf "$PKI"; mkdir -p "$PKI"
  for i in $(seq 1 $((CLIENTS - 1))); do
    "$SECAGG" keygen --out "$PKI/host$i.key" --roster "$PKI/roster.txt" --name "host$i" >/dev/null
  done
  "$SECAGG" keygen --out "$PKI/device.key" --roster "$PKI/roster.txt" --name device >/dev/null
fi
(cd devices/cortex-m && SECAGG_DEVICE_DIM=$DIM SECAGG_DEVICE_IDENTITY=$PKI/device.key \
  SECAGG_DEVICE_ROSTER=$PKI/roster.txt cargo build -q --release --features qemu --bin client)
ELF=$ROOT/devices/cortex-m/target/thumbv7em-none-eabihf/release/client
FLASH=$(python3 - "$ELF" <<'PY'
import struct, sys
# Flash = the loadable bytes in flash: PT_LOAD segments' file size (text, rodata, data).
d = open(sys.argv[1], 'rb').read()
phoff, = struct.unpack_from('<I', d, 28); phentsize, phnum = struct.unpack_from('<HH', d, 42)
print(sum(struct.unpack_from('<IIIIIIII', d, phoff + i * phentsize)[4]
          for i in range(phnum) if struct.unpack_from('<I', d, phoff + i * phentsize)[0] == 1))
PY
)

# --- the round -----------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/secagg-device-round.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Host client i's input: (1000 i + 7 j) mod 2^16, as .npy (uint64).
python3 - "$WORK" "$CLIENTS" "$DIM" <<'PY'
import struct, sys
work, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(1, n):
    hdr = "{'descr': '<u8', 'fortran_order': False, 'shape': (%d,), }" % d
    hdr += ' ' * (63 - (10 + len(hdr)) % 64) + '\n'
    with open(f'{work}/host{i}.npy', 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode())
        f.write(struct.pack(f'<{d}Q', *[(1000 * i + 7 * j) % 65536 for j in range(d)]))
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The malicious model with a PKI; (k, t) and min_clients from the server's planner unless
# --degree / --threshold are given (the device checks them against its own assumptions).
PARAMS=()
# A forged round keeps the device from joining: the server starts without it after this.
JOIN_TIMEOUT=15s; [ "$ATTACK" = forge-round ] && JOIN_TIMEOUT=5s
[ -n "$DEGREE" ] && PARAMS+=(--degree "$DEGREE")
[ -n "$THRESHOLD" ] && PARAMS+=(--threshold "$THRESHOLD")
"$SECAGG" server "${PARAMS[@]}" --listen 127.0.0.1:0 --clients "$CLIENTS" --min-clients $((CLIENTS - 1)) \
  --dim "$DIM" --bits "$BITS" --prg "$PRG" --rounds 1 --threat malicious --pki "$PKI/roster.txt" \
  --join-timeout "$JOIN_TIMEOUT" --stage-timeout 20s --data-dir "$WORK/server" \
  --ready-file "$WORK/ready.json" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!; PIDS+=("$SERVER_PID")
for _ in $(seq 300); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["address"])' "$WORK/ready.json")
URL=http://$ADDR
log "server at $URL"

SERIAL_PORT=$(free_port)
# -icount shift=0: the firmware's counter reads instructions; semihosting carries its log and
# the host entropy that stands in for the STM32's TRNG.
qemu-system-arm -M netduinoplus2 -nographic -monitor none -icount shift=0 \
  -semihosting-config enable=on,target=native \
  -serial "tcp:127.0.0.1:$SERIAL_PORT,server=on,wait=on" \
  -kernel "$ELF" >"$WORK/device.log" 2>"$WORK/qemu.err" &
QEMU_PID=$!; PIDS+=("$QEMU_PID")
GW_ARGS=(--server "$URL" --serial "tcp:127.0.0.1:$SERIAL_PORT" --name device --silence 10s --json)
[ -n "$TAMPER_AT" ] && GW_ARGS+=(--tamper-at "$TAMPER_AT")
[ -n "$ATTACK" ] && GW_ARGS+=(--attack "$ATTACK" --attack-roster "$PKI/roster.txt")
"$SECAGG" gateway "${GW_ARGS[@]}" >"$WORK/gateway.json" 2>"$WORK/gateway.err" &
GW_PID=$!; PIDS+=("$GW_PID")

HOST_PIDS=()
for i in $(seq 1 $((CLIENTS - 1))); do
  "$SECAGG" client --server "$URL" --input "$WORK/host$i.npy" --name "host$i" \
    --threat malicious --identity "$PKI/host$i.key" --roster "$PKI/roster.txt" \
    >"$WORK/host$i.log" 2>&1 &
  HOST_PIDS+=("$!"); PIDS+=("$!")
done

if [ -n "$KILL_AT" ]; then
  # The stage the device answers just before KILL_AT; killed once its log shows that answer.
  case "$KILL_AT" in
    advertise) BEFORE=join ;; share) BEFORE=advertise ;; masked-input) BEFORE=share ;;
    consistency) BEFORE=masked-input ;; unmask) BEFORE=consistency ;;
    *) echo "--kill-at: advertise|share|masked-input|consistency|unmask" >&2; exit 2 ;;
  esac
  PATTERN="\"event\":\"boot\""; [ "$BEFORE" != boot ] && PATTERN="\"stage\":\"$BEFORE\""
  for _ in $(seq 1200); do grep -q "$PATTERN" "$WORK/device.log" 2>/dev/null && break; sleep 0.05; done
  kill -9 "$QEMU_PID" 2>/dev/null || true
  wait "$QEMU_PID" 2>/dev/null || true
  log "device killed before answering $KILL_AT"
fi

wait "$SERVER_PID" || { cat "$WORK/server.log" >&2; exit 1; }
for p in "${HOST_PIDS[@]}"; do wait "$p" || true; done
wait "$GW_PID" || true
wait "$QEMU_PID" 2>/dev/null || true

python3 - "$WORK" "$CLIENTS" "$DIM" "$BITS" "$FLASH" "$KILL_AT" "$TAMPER_AT" "$JSON" "$ATTACK" <<'PY'
import glob, json, struct, sys
work, n, d, bits, flash, kill_at, tamper_at, as_json, attack = sys.argv[1:10]
n, d, bits, flash = int(n), int(d), int(bits), int(flash)
summary = json.load(open(glob.glob(f'{work}/server/rounds/*.json')[0]))
raw = open(glob.glob(f'{work}/server/rounds/*.npy')[0], 'rb').read()
hlen, = struct.unpack_from('<H', raw, 8)
header = raw[10:10 + hlen].decode()
code = {"'<u1'": 'B', "'|u1'": 'B', "'<u2'": 'H', "'<u4'": 'I', "'<u8'": 'Q'}
fmt = next(c for k, c in code.items() if k in header)
agg = list(struct.unpack_from(f'<{d}{fmt}', raw, 10 + hlen))
survivors = summary.get('survivors', [])
def value(name, j):
    if name == 'device':
        return (7919 + j * 104729) % 65536   # devices/cortex-m/src/input.rs
    return (1000 * int(name[4:]) + 7 * j) % 65536
want = [sum(value(s, j) for s in survivors) % (1 << bits) for j in range(d)]
try:
    gw = json.load(open(f'{work}/gateway.json'))
except (OSError, ValueError):
    gw = {'outcome': 'none', 'reason': open(f'{work}/gateway.err').read().strip()[-300:]}
events = []
for line in open(f'{work}/device.log', errors='replace'):
    try:
        events.append(json.loads(line))
    except ValueError:
        pass
stages = {}
for e in events:
    if e.get('event') == 'stage' and e['stage'] != 'end':
        g = gw.get('stages', {}).get(e['stage'], {})
        msg = g.get('message_bytes_to_device', 0) + g.get('message_bytes_from_device', 0)
        ser = g.get('serial_bytes_to_device', 0) + g.get('serial_bytes_from_device', 0)
        stages[e['stage']] = {
            'instructions': e['instructions'],
            'bytes_received': e['bytes_in'], 'bytes_sent': e['bytes_out'],
            'serial_bytes': ser, 'grpc_bytes': g.get('grpc_bytes_from_server', 0) + g.get('grpc_bytes_to_server', 0),
            'framing_overhead': round(ser / msg - 1, 4) if msg else None,
        }
peaks = [e for e in events if 'heap_peak_bytes' in e]
ram = max((e['heap_peak_bytes'] + e['stack_peak_bytes'] for e in peaks), default=None)
out = {
    'aggregate_ok': agg == want and len(survivors) >= n - 1,
    'clients': n, 'dim': d, 'bits': bits, 'parameters': summary.get('parameters'),
    'survivors': survivors,
    'device_survived': 'device' in survivors,
    'gateway_outcome': gw.get('outcome'), 'gateway_reason': gw.get('reason', ''),
    'serial_bytes_skipped': gw.get('serial_bytes_skipped'),
    'ram_peak_bytes': ram,
    'heap_peak_bytes': max((e['heap_peak_bytes'] for e in peaks), default=None),
    'stack_peak_bytes': max((e['stack_peak_bytes'] for e in peaks), default=None),
    'flash_bytes': flash,
    'instructions_total': sum(s['instructions'] for s in stages.values()),
    'stages': stages,
    'kill_at': kill_at or None, 'tamper_at': tamper_at or None, 'attack': attack or None,
    'device_refused': next((e['reason'] for e in events if e.get('event') == 'refused'), None),
    'device_refused_kind': next((e.get('kind') for e in events if e.get('event') == 'refused'), None),
    'gateway_attack': gw.get('attack'),
}
# What the attacking gateway obtained: nothing, or (if the device had taken part) its input.
ga = gw.get('attack') or {}
out['gateway_recovered_input'] = bool(ga.get('recovered'))
# What must become of the device: killed before uploading, or tampered with, it is not among
# the survivors (refused when tampered); killed after uploading, its input is in the sum.
out['device_fate'] = ('survived' if out['device_survived']
                      else 'refused' if out['device_refused'] else 'dropped')
out['device_fate_expected'] = ('refused' if tamper_at or attack
                               else 'dropped' if kill_at in ('advertise', 'share', 'masked-input')
                               else 'survived')
out['ok'] = (out['aggregate_ok'] and out['device_fate'] == out['device_fate_expected']
             and not out['gateway_recovered_input']
             and (not attack or ga.get('mode') == attack))
if as_json == '1':
    print(json.dumps(out))
else:
    print(json.dumps(out, indent=2))
sys.exit(0 if out['ok'] else 1)
PY
