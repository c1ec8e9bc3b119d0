// An independent check of testamur's Open Badges 3.0 credentials: Digital Bazaar's
// VC library (@digitalbazaar/vc with the eddsa-rdfc-2022 cryptosuite, a real
// JSON-LD processor and RDFC-1.0 canonicalizer) verifies each credential offline,
// and @digitalbazaar/vc-bitstring-status-list (`checkStatus`) its Bitstring Status
// List entry: it loads the status list credential, verifies it, checks that its
// issuer and status purpose match, decodes the list and reads the credential's bit.
//
//   node verify.mjs CONTEXTS_DIR STORAGE_DIR BASE_URL FILE...
//
// The document loader serves only the pinned contexts of CONTEXTS_DIR (testamur's
// `contexts/`), did:key documents (made by Digital Bazaar's did:key driver, from
// the key in the identifier), and did:web documents and status list credentials
// read from the published storage (BASE_URL names STORAGE_DIR): nothing is
// fetched from the network.
// Prints one JSON line per file: {"file", "verified", "revoked", "error"}, where
// `revoked` is the status bit of the credential's revocation entry as the library
// reports it (null without one, or on error); exits 0.
// Installed by scripts/setup.sh --test (tests/credentials/package.json).

import fs from 'node:fs';
import path from 'node:path';

import * as vc from '@digitalbazaar/vc';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022CryptoSuite} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {driver as didKeyDriver} from '@digitalbazaar/did-method-key';

const [contextsDir, storageDir, baseUrl, ...files] = process.argv.slice(2);

const CONTEXTS = {
  'https://www.w3.org/ns/credentials/v2': 'credentials-v2.jsonld',
  'https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json': 'ob-v3p0-context-3.0.3.json',
  'https://www.w3.org/ns/did/v1': 'did-v1.jsonld',
  'https://w3id.org/security/multikey/v1': 'multikey-v1.jsonld',
};

const didKey = didKeyDriver();
didKey.use({multibaseMultikeyHeader: 'z6Mk', fromMultibase: Ed25519Multikey.from});

// did:web:host[:path] -> https://host[/path]/did.json (.well-known without a path).
function didWebUrl(did) {
  const [host, ...segs] = did.slice('did:web:'.length).split(':');
  const h = decodeURIComponent(host);
  return segs.length ? `https://${h}/${segs.join('/')}/did.json` : `https://${h}/.well-known/did.json`;
}

// The JSON document a URL under BASE_URL names in the storage.
function stored(url) {
  const rel = url.slice(baseUrl.length);
  const file = path.resolve(storageDir, rel);
  if(!file.startsWith(path.resolve(storageDir) + path.sep)) {
    throw new Error(`${url} names no file in the storage`);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

async function documentLoader(url) {
  if(CONTEXTS[url]) {
    const document = JSON.parse(fs.readFileSync(path.join(contextsDir, CONTEXTS[url]), 'utf8'));
    return {contextUrl: null, documentUrl: url, document};
  }
  if(url.startsWith('did:key:')) {
    const document = await didKey.get({url});
    return {contextUrl: null, documentUrl: url, document};
  }
  if(url.startsWith('did:web:')) {
    const [did, fragment] = url.split('#');
    const docUrl = didWebUrl(did);
    if(!docUrl.startsWith(baseUrl)) {
      throw new Error(`${did} resolves to ${docUrl}, outside the storage at ${baseUrl}`);
    }
    const doc = stored(docUrl);
    if(doc.id !== did) {
      throw new Error(`the DID document at ${docUrl} is for ${doc.id}, not ${did}`);
    }
    if(!fragment) {
      return {contextUrl: null, documentUrl: url, document: doc};
    }
    const vm = (doc.verificationMethod || []).find(m => m.id === url);
    if(!vm) {
      throw new Error(`${did}'s DID document has no verification method ${url}`);
    }
    return {
      contextUrl: null, documentUrl: url,
      document: {'@context': doc['@context'], ...vm},
    };
  }
  // A status list credential (or any other published document) in the storage.
  if(url.startsWith(baseUrl) && !url.includes('#')) {
    return {contextUrl: null, documentUrl: url, document: stored(url)};
  }
  throw new Error(`not served offline: ${url}`);
}

function messages(e) {
  const all = [];
  for(let x = e; x; x = x.cause) {
    (x.errors || [x]).forEach(y => all.push(y.message || String(y)));
  }
  return all.join('; ');
}

for(const file of files) {
  let out;
  try {
    const credential = JSON.parse(fs.readFileSync(file, 'utf8'));
    const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022CryptoSuite});
    let status = null;
    const result = await vc.verifyCredential({
      credential, suite, documentLoader,
      // The status check, its answer kept: `verified` says the list was checked,
      // the entry's `status` whether the bit is set.
      checkStatus: async options => {
        status = await checkStatus({
          ...options,
          verifyBitstringStatusListCredential: true,
          verifyMatchingIssuers: true,
        });
        return status;
      },
    });
    const entry = status && status.verified &&
      (status.results || []).find(r => r.credentialStatus.statusPurpose === 'revocation');
    const errors = [result.error, status && status.error].filter(Boolean);
    out = {
      file,
      verified: result.verified === true,
      revoked: entry ? entry.status : null,
      error: errors.length ? errors.map(messages).join('; ') : null,
    };
  } catch(e) {
    out = {file, verified: false, revoked: null, error: String(e && e.stack || e)};
  }
  console.log(JSON.stringify(out));
}
