// An independent check of testamur's Open Badges 3.0 credentials: Digital Bazaar's
// VC library (@digitalbazaar/vc with the eddsa-rdfc-2022 cryptosuite, a real
// JSON-LD processor and RDFC-1.0 canonicalizer) verifies each credential offline.
//
//   node verify.mjs CONTEXTS_DIR STORAGE_DIR BASE_URL FILE...
//
// The document loader serves only the pinned contexts of CONTEXTS_DIR (testamur's
// `contexts/`), did:key documents (made by Digital Bazaar's did:key driver, from
// the key in the identifier) and did:web documents read from the published
// storage (BASE_URL names STORAGE_DIR): nothing is fetched from the network.
// Prints one JSON line per file: {"file", "verified", "error"}; exits 0.
// Installed by scripts/setup.sh --test (tests/credentials/package.json).

import fs from 'node:fs';
import path from 'node:path';

import * as vc from '@digitalbazaar/vc';
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
    const doc = JSON.parse(fs.readFileSync(path.join(storageDir, docUrl.slice(baseUrl.length)), 'utf8'));
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
  throw new Error(`not served offline: ${url}`);
}

for(const file of files) {
  let out;
  try {
    const credential = JSON.parse(fs.readFileSync(file, 'utf8'));
    const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022CryptoSuite});
    const result = await vc.verifyCredential({credential, suite, documentLoader});
    const error = result.error ?
      (result.error.errors || [result.error]).map(e => e.message || String(e)).join('; ') : null;
    out = {file, verified: result.verified, error};
  } catch(e) {
    out = {file, verified: false, error: String(e && e.stack || e)};
  }
  console.log(JSON.stringify(out));
}
