#!/usr/bin/env python3
"""Instructions Redis spends per job in the queue path's Lua scripts (issue 15,
docs/PERFORMANCE.md "Redis instructions per job"): deterministic, unlike CPU time
on a shared machine. Run against a redis-server under callgrind:

    valgrind --tool=callgrind --callgrind-out-file=/tmp/vg/cg.out \
      redis-server --port 0 --unixsocket /tmp/vg/r.sock --dir /tmp/vg --save "" --appendonly no &
    SUBMIT_BATCH=500 BATCH=50 python3 bench/lua_instructions.py /tmp/vg/r.sock cc/src/store 1000 submit,lease,complete

It loads record.lua + lib.lua + each script as the CC does (store/scripts.rs),
submits N adds (SUBMIT_BATCH per call), leases them (500 per call), completes them
(BATCH per call; OLD=1 for the single-job complete of releases before dc5fb13),
and prints callgrind's instruction count per job for each phase named in the 4th
argument (callgrind_control -z before, --dump after). FLUSHALLs the server first:
never point it at a Redis that holds anything.
"""
# print Redis's server-side µs per job for each phase (INFO commandstats).
import socket, sys, time, os, uuid
sys.path.insert(0, '/tmp')
path, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
MEASURE = sys.argv[4].split(',')
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(path); return s, s.makefile('rb')
def enc(*args):
    out = b'*%d\r\n' % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b'$%d\r\n%s\r\n' % (len(a), a)
    return out
def read(f):
    line = f.readline(); t, rest = line[:1], line[1:-2]
    if t == b'+': return rest
    if t == b'-': raise Exception(rest)
    if t == b':': return int(rest)
    if t == b'$':
        k = int(rest)
        if k < 0: return None
        d = f.read(k + 2); return d[:-2]
    if t == b'*':
        k = int(rest); return [read(f) for _ in range(k)] if k >= 0 else None
s, f = conn()
def cmd(*a): s.sendall(enc(*a)); return read(f)
def pipe(cmds):
    s.sendall(b''.join(enc(*c) for c in cmds)); return [read(f) for _ in cmds]
lib = (open(src + '/record.lua').read() + '\n' if os.path.exists(src + '/record.lua') else '') + open(src + '/lib.lua').read()
def load(name): return cmd('SCRIPT', 'LOAD', lib + '\n' + open(src + '/' + name + '.lua').read()).decode()
submit, lease, complete = load('submit'), load('lease'), load('complete')
cmd('FLUSHALL')
cmd('HSET', 'tm:ws:w1', 'capacity', 1000000, 'name', 'w1')
cmd('ZADD', 'tm:wsbeat', int(time.time()*1000), 'w1')
now = int(time.time()*1000); at = '2026-12-02T07:30:00.123Z'
def stats():
    out = {}
    for l in cmd('INFO', 'commandstats').decode().splitlines():
        if l.startswith('cmdstat_'):
            name, rest = l[8:].split(':', 1)
            d = dict(kv.split('=') for kv in rest.split(','))
            out[name] = (int(d['calls']), int(d['usec']))
    return out
def ctl(x):
    import subprocess
    out = subprocess.run(['callgrind_control'] + x, capture_output=True, text=True).stdout
    return out
def instr():
    # total instructions collected so far (callgrind_control -s shows totals)
    out = subprocess.run(['callgrind_control', '--dump=x'], capture_output=True, text=True)
    import glob, os, re
    files = sorted(glob.glob('/tmp/vg/cg.out*'), key=os.path.getmtime)
    txt = open(files[-1]).read()
    m = re.search(r'^summary: (\d+)', txt, re.M) or re.search(r'^totals: (\d+)', txt, re.M)
    return int(m.group(1))
import subprocess
def phase(label, cmds):
    measure = label in MEASURE
    if measure: ctl(['-z'])
    cmd('CONFIG', 'RESETSTAT')
    res = []
    for i in range(0, len(cmds), 200): res += pipe(cmds[i:i+200])
    if measure:
        pass
        print(f"{label:9s} {instr()/n/1000:8.1f} k instructions/job")
    st = stats()
    ev = st.get('evalsha', (0, 0))
    nested = sum(u for k, (c, u) in st.items() if k not in ('evalsha', 'config', 'info'))
    print(f"{label:9s} {ev[1]/n:7.1f} µs/job (nested commands {nested/n:5.1f}, script calls {ev[0]})")
    return res
fields = ['course_id', 'course-v1:DemoX+CERT101+2026', 'username', None, 'name', 'Ana María García',
  'course_name', 'Introduction to Verifiable Credentials', 'org', 'DemoX University', 'grade', 'Pass',
  'designation', '', 'issued_date', '2026-12-02', 'template', 'letter', 'template_version', '0a1b2c3d4e5f', 'lang', '']
cmds = []
jobs = []
for i in range(n):
    cid = '%032x' % (i + 1); jid = '%032x' % (10**9 + i)
    du, vu = str(uuid.uuid4()), str(uuid.uuid4())
    fl = list(fields); fl[3] = 'queue%07d' % i
    jobs.append((cid, jid, du, vu))
    grp = [cid, jid, 'add', 'generating', 'downloadable,error,deleted', '1',
                 du, vu, '', '', '', 'letter@0a1b2c3d4e5f', '', '', len(fl)//2] + fl
    SB = int(os.environ.get('SUBMIT_BATCH', '1'))
    if i % SB == 0: cmds.append(['EVALSHA', submit, 0, 'tm:', now, at, 86400])
    cmds[-1] += grp
phase('submit', cmds)
leased = []
cmds = [['EVALSHA', lease, 0, 'tm:', 'w1', 500, 600000, 10**9] + ['s%d' % k for k in range(500)] for _ in range((n + 499)//500)]
for r in phase('lease', cmds):
    for j in r[2:]: leased.append((j[0].decode(), j[1].decode(), j[4].decode(), j[5].decode()))
base = 'https://certificates.example.org/'
cmds = []
BATCH = int(os.environ.get('BATCH', '1'))
items = []
for jid, lid, du, vu in leased:
    items.append([jid, lid, 'w1', du, vu, base + 'downloads/%s/Certificate.pdf' % du, base + 'cert/%s/' % vu,
                  base + 'cert/%s/Certificate.pdf.sig' % vu, jid + jid, '0123456789ABCDEF0123456789ABCDEF01234567',
                  base + 'cert/%s/credential.json' % vu])
if os.environ.get('OLD'):
    for it in items:
        jid, lid, ws, du, vu, a, b, c, sha, fp, _cred = it
        cmds.append(['EVALSHA', complete, 0, 'tm:', jid, lid, ws, now, at, 'add:downloadable,regen:downloadable,delete:deleted',
                     du, vu, a, b, c, sha, 'tm:done:1', 7200, fp])
    BATCH = 10**9
for i in range(0, len(items) if not os.environ.get('OLD') else 0, BATCH):
    c = ['EVALSHA', complete, 0, 'tm:', now, at, 'add:downloadable,regen:downloadable,delete:deleted', 'tm:done:1', 7200]
    for it in items[i:i+BATCH]: c += it
    cmds.append(c)
res = phase('complete', cmds)
assert all(r[k] == b'ok' for r in res for k in range(0, len(r), 3)), res[:3]
