// A real OpenID Connect provider for PulseGuardian's tests (npm package
// oidc-provider, pinned in package.json). Started by scripts/services; by hand:
//   cd scripts/oidc && npm ci && node provider.mjs
//
// Issuer:  http://127.0.0.1:9090  (port from OIDC_PORT; the issuer follows it)
// Client:  client_id     pulseguardian-test
//          client_secret pulseguardian-test-secret
//          token endpoint auth: client_secret_basic (client_secret_post is
//          accepted too: oidc-provider takes either for a basic client)
//          redirect_uris http://127.0.0.1:8000/auth/callback
//                        http://127.0.0.1:18000/auth/callback
//                        http://localhost:8000/auth/callback
//          (more with OIDC_EXTRA_REDIRECT_URIS, comma-separated)
//          grant authorization_code, response_type code, PKCE (S256) REQUIRED
// Scopes:  openid email profile
// Claims:  sub = the login, email = the login, name = the login,
//          email_verified = false when the login starts with "unverified",
//          else true. They are in the ID token (conformIdTokenClaims: false)
//          and at the userinfo endpoint.
// Keys:    a fresh RS256 key pair at every start, published at /jwks
//          (so tokens from an earlier run do not verify after a restart).
//
// Signing in WITHOUT a browser (any HTTP client with a cookie jar; follow
// no redirects automatically, or only to the provider's own host, because the
// last one points at the relying party):
//
//  1. GET /auth?client_id=pulseguardian-test&response_type=code
//         &redirect_uri=http://127.0.0.1:8000/auth/callback
//         &scope=openid%20email%20profile&state=S&nonce=N
//         &code_challenge=<b64url(sha256(verifier))>&code_challenge_method=S256
//     -> 303, Location: /interaction/<uid>
//        Set-Cookie: _interaction=<uid> (path /interaction/<uid>) and
//                    _interaction_resume=<uid> (path /auth/<uid>), each with
//                    a signature cookie <name>.sig on the same path; send
//                    them all back (reqwest's cookie store or curl -b/-c do)
//  2. (optional) GET /interaction/<uid> -> 200, the HTML login form, whose
//     <form action="/interaction/<uid>" method="post"> has the fields
//     prompt=login, login, password.
//  3. POST /interaction/<uid>
//         Content-Type: application/x-www-form-urlencoded
//         body: prompt=login&login=alice%40example.com&password=anything
//     (sends the _interaction cookie)
//     -> 303, Location: http://127.0.0.1:9090/auth/<uid>
//  4. GET /auth/<uid>  (sends the _interaction_resume cookie)
//     -> 303, Location: <redirect_uri>?code=<code>&state=S&iss=http%3A%2F%2F127.0.0.1%3A9090
//        and Set-Cookie: _session (the provider's SSO session).
//     There is NO consent step: loadExistingGrant below grants the client
//     "openid email profile" on the spot. (Without that, step 4 would
//     redirect to /interaction/<uid2> again and one would POST
//     prompt=consent there.)
//  5. POST /token  (Authorization: Basic base64(client_id:client_secret))
//         grant_type=authorization_code&code=<code>
//         &redirect_uri=<same as in 1>&code_verifier=<verifier>
//     -> 200 JSON {access_token, id_token, token_type: "Bearer", expires_in, scope}
//
// A second /auth with the same cookie jar skips the login (SSO via _session);
// add prompt=login to force the form again, or use a fresh cookie jar.
// Everything lives in memory: a restart forgets sessions, codes and grants.
// scripts/oidc/selftest.mjs runs exactly these steps.

import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

// Not OIDC_ISSUER: that variable is the app's, and may be set in the same shell.
const port = Number.parseInt(process.env.OIDC_PORT || '9090', 10);
const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;

const CLIENT_ID = 'pulseguardian-test';
const CLIENT_SECRET = 'pulseguardian-test-secret';
const SCOPE = 'openid email profile';

const redirectUris = [
  'http://127.0.0.1:8000/auth/callback',
  'http://127.0.0.1:18000/auth/callback',
  'http://localhost:8000/auth/callback',
  ...(process.env.OIDC_EXTRA_REDIRECT_URIS || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `pg-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

function claimsFor(login) {
  return {
    sub: login,
    email: login,
    email_verified: !login.startsWith('unverified'),
    name: login,
  };
}

const configuration = {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
  ],
  jwks: { keys: [signingKey()] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put the scope's claims into the ID token too, not only at userinfo.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    // The built-in login form: any login, any password. Kept on on purpose.
    devInteractions: { enabled: true },
  },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return claimsFor(id);
      },
    };
  },
  // Auto-consent: every client gets "openid email profile" at once, so the
  // flow never shows the consent screen.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      // A new login in the same browser session may be another account.
      if (existing && existing.accountId === ctx.oidc.session.accountId) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(SCOPE);
    grant.addOIDCClaims(['email', 'email_verified', 'name']);
    await grant.save();
    return grant;
  },
};

const provider = new Provider(issuer, configuration);

provider.on('server_error', (ctx, err) => {
  console.error('server_error', err);
});
provider.on('grant.error', (ctx, err) => {
  console.error('grant.error', err.message, err.error_description || '');
});
provider.on('authorization.error', (ctx, err) => {
  console.error('authorization.error', err.message, err.error_description || '');
});

const server = provider.listen(port, host, () => {
  console.log(`oidc-provider listening on ${issuer} (discovery: ${issuer}/.well-known/openid-configuration)`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
