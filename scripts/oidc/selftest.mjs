// Checks the test OIDC provider end to end, the way a non-browser client
// (PulseGuardian's Rust tests with reqwest) signs in: the steps documented at
// the top of provider.mjs. Plain Node (>= 20), no dependencies.
//
//   node scripts/oidc/selftest.mjs            # provider on http://127.0.0.1:9090
//   OIDC_ISSUER=http://127.0.0.1:9191 node scripts/oidc/selftest.mjs
//
// Exits non-zero on the first failed check.

import { createHash, createPublicKey, createVerify, randomBytes } from 'node:crypto';

const issuer = process.env.OIDC_ISSUER || `http://127.0.0.1:${process.env.OIDC_PORT || '9090'}`;
const CLIENT_ID = 'pulseguardian-test';
const CLIENT_SECRET = 'pulseguardian-test-secret';
const REDIRECT_URI = 'http://127.0.0.1:8000/auth/callback';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// A minimal cookie jar: name -> {value, path}; enough for one host.
class Jar {
  constructor() { this.cookies = new Map(); }

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${name};${path}`;
      if (expired || value === '') this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

async function request(jar, url, init = {}) {
  const headers = { ...(init.headers || {}) };
  const cookie = jar.header(url);
  if (cookie) headers.cookie = cookie;
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  jar.store(res);
  return res;
}

function location(res, base) {
  check(res.status >= 300 && res.status < 400, `a redirect, got ${res.status} from ${res.url || base}`);
  return new URL(res.headers.get('location'), base).toString();
}

async function discovery() {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`);
  check(res.ok, `discovery answers (${res.status})`);
  const doc = await res.json();
  check(doc.issuer === issuer, `discovery issuer ${doc.issuer} === ${issuer}`);
  return doc;
}

function verifyJwt(jwt, jwks) {
  const [h, p, s] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  check(header.alg === 'RS256', `id_token alg RS256 (got ${header.alg})`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  check(jwk, `a JWKS key with kid ${header.kid}`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const ok = createVerify('RSA-SHA256').update(`${h}.${p}`).verify(key, Buffer.from(s, 'base64url'));
  check(ok, 'id_token signature verifies against the JWKS');
  return JSON.parse(Buffer.from(p, 'base64url'));
}

// Steps 1-4 of provider.mjs: returns the code (and the state checks).
async function authorize(jar, doc, login, { codeChallenge, state, nonce }) {
  const auth = new URL(doc.authorization_endpoint);
  auth.search = new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile',
    state,
    nonce,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    prompt: 'login',
  }).toString();

  // 1. authorize -> 303 /interaction/<uid>
  let res = await request(jar, auth.toString());
  const interactionUrl = location(res, issuer);
  check(/\/interaction\/[^/]+$/.test(new URL(interactionUrl).pathname), `redirect to /interaction/<uid>: ${interactionUrl}`);

  // 2. the login form (only to show it is there)
  res = await request(jar, interactionUrl);
  const html = await res.text();
  check(res.status === 200 && html.includes('name="login"'), 'login form is served');

  // 3. submit the form
  res = await request(jar, interactionUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ prompt: 'login', login, password: 'whatever' }).toString(),
  });
  const resumeUrl = location(res, interactionUrl);
  check(new URL(resumeUrl).pathname.startsWith('/auth/'), `login redirects to /auth/<uid>: ${resumeUrl}`);

  // 4. resume -> redirect_uri?code=...
  res = await request(jar, resumeUrl);
  const back = new URL(location(res, resumeUrl));
  check(`${back.origin}${back.pathname}` === REDIRECT_URI, `back at redirect_uri (got ${back}) - no consent step expected`);
  check(!back.searchParams.get('error'), `no error: ${back.searchParams.get('error')} ${back.searchParams.get('error_description')}`);
  check(back.searchParams.get('state') === state, 'state round-trips');
  check(back.searchParams.get('iss') === issuer, 'iss parameter in the response');
  const code = back.searchParams.get('code');
  check(code, 'a code');
  return code;
}

async function signIn(doc, jwks, login, expectVerified, authMethod) {
  const jar = new Jar();
  const verifier = b64url(randomBytes(32));
  const codeChallenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(12));
  const nonce = b64url(randomBytes(12));
  const code = await authorize(jar, doc, login, { codeChallenge, state, nonce });

  // 5. exchange the code
  const form = new URLSearchParams({
    grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
  });
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (authMethod === 'basic') {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64')}`;
  } else {
    form.set('client_id', CLIENT_ID);
    form.set('client_secret', CLIENT_SECRET);
  }
  const res = await fetch(doc.token_endpoint, { method: 'POST', headers, body: form.toString() });
  const tokens = await res.json();
  check(res.status === 200, `token endpoint 200 (got ${res.status} ${JSON.stringify(tokens)})`);
  check(tokens.id_token && tokens.access_token, 'id_token and access_token');

  const claims = verifyJwt(tokens.id_token, jwks);
  check(claims.iss === issuer, 'id_token iss');
  check(claims.aud === CLIENT_ID, 'id_token aud');
  check(claims.nonce === nonce, 'id_token nonce');
  check(claims.sub === login, `sub === ${login} (got ${claims.sub})`);
  check(claims.email === login, `email === ${login} (got ${claims.email})`);
  check(claims.email_verified === expectVerified, `email_verified === ${expectVerified} (got ${claims.email_verified})`);

  const ui = await fetch(doc.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  const info = await ui.json();
  check(ui.status === 200 && info.email === login && info.email_verified === expectVerified, `userinfo ${JSON.stringify(info)}`);

  // A reused code must fail.
  const again = await fetch(doc.token_endpoint, { method: 'POST', headers, body: form.toString() });
  check(again.status === 400, `reused code rejected (got ${again.status})`);

  console.log(`ok: ${login} (${authMethod}) -> email_verified=${claims.email_verified}`);
}

async function pkceIsRequired(doc) {
  const jar = new Jar();
  const auth = new URL(doc.authorization_endpoint);
  auth.search = new URLSearchParams({
    client_id: CLIENT_ID, response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'openid email', state: 'x',
  }).toString();
  const res = await request(jar, auth.toString());
  const back = new URL(location(res, issuer));
  check(back.searchParams.get('error') === 'invalid_request', `authorize without PKCE is refused (got ${back})`);
  console.log('ok: PKCE is required');
}

async function main() {
  const doc = await discovery();
  const jwks = await (await fetch(doc.jwks_uri)).json();
  await signIn(doc, jwks, 'alice@example.com', true, 'basic');
  await signIn(doc, jwks, 'unverified-bob@example.com', false, 'basic');
  await signIn(doc, jwks, 'carol@example.com', true, 'post');
  await pkceIsRequired(doc);
  console.log(`oidc selftest passed against ${issuer}`);
}

main().catch((err) => {
  console.error(`oidc selftest FAILED against ${issuer}: ${err.message}`);
  process.exit(1);
});
