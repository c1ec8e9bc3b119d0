-- The certificate record: one compact JSON string per certificate, `c:{cert_id}`,
-- holding everything the certificate and each of its published versions say
-- (docs/ARCHITECTURE.md "Certificate records"); `v:{verify_uuid}` -> cert_id finds the
-- certificate of a version. Prepended to the scripts before lib.lua. Nothing is
-- stored twice: a version's URLs are derived from its uuids and an interned base URL,
-- what it printed is the certificate's fields overlaid with the differences recorded
-- when they changed.
--
-- Record fields (short names, the record is kept for every certificate forever):
--   f the learner fields as submitted (course_id, username, name, ...);
--   s state; u updated_at (left out when it is the newest history entry's time);
--   j job_id while a job is pending; a attempts of the last job that ended (while
--   one is pending its attempts are the job's `attempt`);
--   e {r = error_reason, c = error_code, d = error_detail} in `error`;
--   c index in vs of the current version; g = 1 once its files were removed (delete);
--   sha, t, tv: the current version's sha256, drawing template and template version;
--   h history [[state, at, detail], ...] where a number detail k means
--     "published download_uuid=.. verify_uuid=.." of version k;
--   vs versions [{v = verify uuid, d = download uuid, b = base URL id | U = {d, v, s} full
--     URLs (and c, the credential's), nv = 1 without a verification page, cr = 1 with
--     an Open Badges credential beside it, k = signing key id (or the
--     fingerprint), p = published_at (left out while the history entry naming the
--     version holds it), st = 's' superseded | 'r' revoked (absent: valid),
--     sa = superseded_at, ra = revoked_at, u = updated_at when it is not the
--     newest of ra, sa, p, x = printed fields that differ from the
--     next version's (the newest's: from f)}].
--
-- Records written before this format (`cert:{id}` hash, `:hist`, `:versions`,
-- `verify:{uuid}` hashes) are migrated when first touched (migrate_cert) or by
-- `testamur migrate`.

-- The fields a verification record shows as printed.
local PRINTED = {'name', 'course_id', 'course_name', 'org', 'issued_date'}
-- Distinct URL bases / signing keys interned at most; past that, versions keep
-- their full URLs / fingerprints (a workserver reporting ever-new bases cannot grow
-- the intern tables without bound).
local INTERN_MAX = 1024

local function cert_key(P, cid) return P .. 'c:' .. cid end

-- A short id for `value` of `kind` ('base' | 'key'), shared by every certificate;
-- nil when the table is full.
local interned_here = {}
local function intern(P, kind, value)
  local memo = kind .. '\0' .. value
  if interned_here[memo] then return interned_here[memo] end
  local ik = P .. 'intern:' .. kind
  local id = redis.call('HGET', ik .. ':id', value)
  if id then
    interned_here[memo] = tonumber(id)
    return tonumber(id)
  end
  if redis.call('HLEN', ik) >= INTERN_MAX then return nil end
  id = redis.call('HINCRBY', P .. 'intern:next', kind, 1)
  redis.call('HSET', ik, id, value)
  redis.call('HSET', ik .. ':id', value, id)
  return id
end

local function interned(P, kind, id)
  local v = redis.call('HGET', P .. 'intern:' .. kind, id)
  if v == false then return nil end
  return v
end

-- Layout paths (common/src/layout.rs).
local function pdf_path(du) return 'downloads/' .. du .. '/Certificate.pdf' end
local function verify_dir(vu) return 'cert/' .. vu .. '/' end
local function sig_path(vu) return 'cert/' .. vu .. '/Certificate.pdf.sig' end
local function pdf_sig_path(du) return 'downloads/' .. du .. '/Certificate.pdf.sig' end
local function credential_path(vu) return 'cert/' .. vu .. '/credential.json' end

local function ends_with(s, suffix)
  return #s >= #suffix and string.sub(s, -#suffix) == suffix
end

-- Record a version's URLs in `ver`: an interned base when all of them are that base
-- plus their layout paths, else the URLs themselves. `curl` is the credential's ('' for none).
local function set_urls(P, ver, durl, vurl, surl, curl)
  durl, vurl, surl, curl = durl or '', vurl or '', surl or '', curl or ''
  ver.b, ver.U, ver.nv, ver.cr = nil, nil, nil, nil
  local base
  if ver.d and ends_with(durl, pdf_path(ver.d)) then
    base = string.sub(durl, 1, #durl - #pdf_path(ver.d))
  end
  if base then
    local ok
    if vurl == '' then
      ok = surl == base .. pdf_sig_path(ver.d)
      if ok then ver.nv = 1 end
    else
      ok = vurl == base .. verify_dir(ver.v) and surl == base .. sig_path(ver.v)
      if ok and curl ~= '' then
        ok = curl == base .. credential_path(ver.v)
        if ok then ver.cr = 1 end
      end
    end
    if ok then
      ver.b = intern(P, 'base', base)
      if ver.b then return end
    end
    ver.nv, ver.cr = nil, nil
  end
  ver.U = {d = durl, v = vurl, s = surl}
  if curl ~= '' then ver.U.c = curl end
end

-- A version's URLs: download, verify ('' without a page), signature, credential
-- ('' without one).
local function version_urls(P, ver)
  if ver.U then return ver.U.d or '', ver.U.v or '', ver.U.s or '', ver.U.c or '' end
  local base = (ver.b and interned(P, 'base', ver.b)) or ''
  if ver.nv then return base .. pdf_path(ver.d), '', base .. pdf_sig_path(ver.d), '' end
  local cred = (ver.cr and base .. credential_path(ver.v)) or ''
  return base .. pdf_path(ver.d), base .. verify_dir(ver.v), base .. sig_path(ver.v), cred
end

local function key_ref(P, fp)
  if not fp or fp == '' then return nil end
  return intern(P, 'key', fp) or fp
end

-- The stored record leaves out what it can recompute: its id (the key names it)
-- and `u` when it is the time of the newest history entry (nearly always).
local function last_at(rec)
  local h = rec.h
  if h and #h > 0 then return h[#h][2] end
  return nil
end

local function load_raw(P, cid)
  local s = redis.call('GET', cert_key(P, cid))
  if s == false then return nil end
  local rec = cjson.decode(s)
  rec.id = cid
  if rec.u == nil then rec.u = last_at(rec) end
  return rec
end

local function save(P, rec)
  -- cjson writes an empty table as an object; the readers take absent for empty.
  if rec.vs and #rec.vs == 0 then rec.vs = nil end
  local id, u = rec.id, rec.u
  rec.id = nil
  if u == last_at(rec) then rec.u = nil end
  redis.call('SET', cert_key(P, id), cjson.encode(rec))
  rec.id, rec.u = id, u
end

-- A stored record (JSON) with its id put back, for the readers (record.rs).
local function with_id(cid, json)
  return '{"id":' .. cjson.encode(cid) .. ',' .. string.sub(json, 2)
end

local function fval(t, k)
  local v = t and t[k]
  if v == nil or v == cjson.null then return '' end
  return v
end

-- What version k printed: the learner fields overlaid with the differences of
-- every version from the newest down to k.
local function printed(rec, k)
  local p = {}
  for _, name in ipairs(PRINTED) do p[name] = fval(rec.f, name) end
  local vs = rec.vs or {}
  for i = #vs, k, -1 do
    if vs[i].x then
      for name, v in pairs(vs[i].x) do p[name] = v end
    end
  end
  return p
end

-- Set the newest version's differences so that it keeps what it printed while the
-- learner fields become `nf` (call before replacing rec.f).
local function keep_printed(rec, nf)
  local vs = rec.vs
  if not vs or #vs == 0 then return end
  local was = printed(rec, #vs)
  local x, any = {}, false
  for _, name in ipairs(PRINTED) do
    if was[name] ~= fval(nf, name) then x[name] = was[name]; any = true end
  end
  if any then vs[#vs].x = x else vs[#vs].x = nil end
end

local function hist(rec, state, at, detail)
  rec.h = rec.h or {}
  local e = {state, at}
  if detail ~= nil and detail ~= '' then e[3] = detail end
  rec.h[#rec.h + 1] = e
  -- Capped: the first entry (how the certificate began) and the newest 199. A
  -- publication's entry is its version's time (`p` left out): kept in the version.
  if #rec.h > 200 then
    local gone = table.remove(rec.h, 2)
    local ver = type(gone[3]) == 'number' and rec.vs and rec.vs[gone[3]]
    if ver and not ver.p then ver.p = gone[2] end
  end
end

local function current_version(rec)
  if rec.c and rec.vs then return rec.vs[rec.c] end
  return nil
end

-- Migrate a certificate written in the earlier format (hash `cert:{id}`, its
-- `:hist` list and `:versions` set, one `verify:{uuid}` hash per version) into its
-- record, removing the old keys. Returns the record, or nil when there is none.
local SYSTEM = {cert_id = true, state = true, updated_at = true, job_id = true, attempts = true,
  error_reason = true, error_code = true, error_detail = true, download_uuid = true,
  verify_uuid = true, download_url = true, verify_url = true, signature_url = true,
  sha256 = true, drawn_template = true, drawn_template_version = true}

local function migrate_cert(P, cid)
  local ok = P .. 'cert:' .. cid
  local flat = redis.call('HGETALL', ok)
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  local rec = {id = cid, f = {}, s = h.state, u = h.updated_at, a = tonumber(h.attempts or '0') or 0}
  for k, v in pairs(h) do
    if not SYSTEM[k] then rec.f[k] = v end
  end
  if h.job_id and h.job_id ~= '' then rec.j = h.job_id end
  if h.error_reason or h.error_code or h.error_detail then
    rec.e = {r = h.error_reason, c = h.error_code, d = h.error_detail}
  end
  if h.sha256 and h.sha256 ~= '' then rec.sha = h.sha256 end
  if h.drawn_template and h.drawn_template ~= '' then rec.t = h.drawn_template end
  if h.drawn_template_version and h.drawn_template_version ~= '' then rec.tv = h.drawn_template_version end
  rec.h = {}
  for _, e in ipairs(redis.call('LRANGE', ok .. ':hist', 0, -1)) do
    local d = cjson.decode(e)
    rec.h[#rec.h + 1] = {d.state, d.at, d.detail}
  end
  -- The versions, oldest first, each with what it printed.
  local olds = {}
  for _, v in ipairs(redis.call('SMEMBERS', ok .. ':versions')) do
    local vf = redis.call('HGETALL', P .. 'verify:' .. v)
    local r = {}
    for i = 1, #vf, 2 do r[vf[i]] = vf[i + 1] end
    if r.status then r.uuid = v; olds[#olds + 1] = r end
  end
  table.sort(olds, function(a, b) return (a.published_at or '') < (b.published_at or '') end)
  rec.vs = {}
  for _, r in ipairs(olds) do
    local du = r.download_url and string.match(r.download_url, 'downloads/([^/]+)/Certificate%.pdf$')
    if r.uuid == h.verify_uuid and h.download_uuid then du = h.download_uuid end
    local ver = {v = r.uuid, d = du or '', p = r.published_at, k = key_ref(P, r.key_fingerprint)}
    if r.status == 'superseded' then ver.st = 's' elseif r.status == 'revoked' then ver.st = 'r' end
    ver.sa, ver.ra = r.superseded_at, r.revoked_at
    local latest = r.revoked_at or r.superseded_at or r.published_at
    if r.updated_at and r.updated_at ~= latest then ver.u = r.updated_at end
    set_urls(P, ver, r.download_url, r.verify_url, r.signature_url)
    ver.printed = {}
    for _, name in ipairs(PRINTED) do ver.printed[name] = r[name] or '' end
    rec.vs[#rec.vs + 1] = ver
  end
  -- Each version's differences from its successor (the newest's from the fields).
  local nextp = {}
  for _, name in ipairs(PRINTED) do nextp[name] = fval(rec.f, name) end
  for i = #rec.vs, 1, -1 do
    local ver = rec.vs[i]
    local x, any = {}, false
    for _, name in ipairs(PRINTED) do
      if ver.printed[name] ~= nextp[name] then x[name] = ver.printed[name]; any = true end
    end
    if any then ver.x = x end
    nextp = ver.printed
    ver.printed = nil
  end
  if h.verify_uuid and h.verify_uuid ~= '' then
    for i, ver in ipairs(rec.vs) do
      if ver.v == h.verify_uuid then rec.c = i end
    end
    if not rec.c and h.download_uuid and h.download_uuid ~= '' then
      -- Published before verification records existed: a version from the certificate.
      local ver = {v = h.verify_uuid, d = h.download_uuid, p = h.updated_at}
      set_urls(P, ver, h.download_url, h.verify_url, h.signature_url)
      rec.vs[#rec.vs + 1] = ver
      rec.c = #rec.vs
    end
  end
  if rec.c and (not h.download_url or h.download_url == '') then rec.g = 1 end
  for _, ver in ipairs(rec.vs) do
    if ver.v ~= '' then redis.call('SET', P .. 'v:' .. ver.v, cid) end
  end
  save(P, rec)
  for _, r in ipairs(olds) do redis.call('DEL', P .. 'verify:' .. r.uuid) end
  redis.call('DEL', ok, ok .. ':hist', ok .. ':versions')
  return rec
end

-- The record of `cid` as stored (JSON without its id; migrated first if it is in
-- the earlier format), not decoded: for readers that pass it on. nil when none.
local function load_stored(P, cid)
  local raw = redis.call('GET', cert_key(P, cid))
  if not raw and migrate_cert(P, cid) then raw = redis.call('GET', cert_key(P, cid)) end
  return raw or nil
end

-- The record of `cid` (migrated first if it is in the earlier format), or nil.
local function load(P, cid)
  local rec = load_raw(P, cid)
  if rec then return rec end
  return migrate_cert(P, cid)
end
