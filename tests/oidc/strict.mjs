// dingsync's OIDC provider as openid-client (a strict, independent OpenID Connect client) sees
// it. Run by tests/it/login_strict.rs, which starts the simulator, two provider replicas that
// share keys and ledger, and passes where they are in the environment:
//
//   ISSUER        the issuer (served by replica 1)
//   REPLICA2      base URL of replica 2 (same issuer path, other port)
//   SIM           base URL of the DingTalk simulator (its login page "scans" as a person)
//   CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USERID
//
// Every check prints "ok - <what>"; the first failure throws and the exit code is 1.
import assert from 'node:assert/strict';
import * as client from 'openid-client';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const ISSUER = env('ISSUER');
const REPLICA2 = env('REPLICA2');
const SIM = env('SIM');
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');
const REDIRECT_URI = env('REDIRECT_URI');
const USERID = env('USERID');

const ok = (what) => console.log(`ok - ${what}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A browser: cookies per name, redirects followed by hand, DingTalk's QR page "scanned". */
class Browser {
  constructor() {
    this.cookies = new Map();
    this.scans = 0;
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  keep(res) {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      this.cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
  }

  /** Follows `url` until it leaves the provider and the simulator: the URL the app receives. */
  async visit(url) {
    for (let i = 0; i < 8; i++) {
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: this.cookieHeader() } });
      this.keep(res);
      if (res.status < 300 || res.status >= 400) {
        throw new Error(`ended on a page ${res.status}: ${await res.text()}`);
      }
      const next = new URL(res.headers.get('location'), url).href;
      if (next.startsWith(SIM)) {
        this.scans += 1;
        const q = new URL(next).searchParams;
        const scan = await fetch(`${SIM}/oauth2/auth/scan`, {
          method: 'POST',
          redirect: 'manual',
          body: new URLSearchParams({
            client_id: q.get('client_id'),
            redirect_uri: q.get('redirect_uri'),
            state: q.get('state'),
            scope: q.get('scope'),
            userid: USERID,
            action: 'confirm',
          }),
        });
        url = new URL(scan.headers.get('location'), next).href;
      } else if (next.startsWith(ISSUER)) {
        url = next;
      } else {
        return new URL(next);
      }
    }
    throw new Error('too many redirects');
  }
}

/** An authorization request with fresh PKCE, nonce and state. */
async function start(config, extra = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const checks = {
    pkceCodeVerifier: verifier,
    expectedNonce: client.randomNonce(),
    expectedState: client.randomState(),
  };
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce: checks.expectedNonce,
    state: checks.expectedState,
    ...extra,
  });
  return { url, checks };
}

async function refused(promise, error) {
  try {
    await promise;
  } catch (e) {
    const got = e.error ?? e.cause?.error ?? e.code;
    assert.equal(got, error, `${e.name}: ${e.message} ${JSON.stringify(e.cause ?? {})}`);
    return e;
  }
  assert.fail(`expected ${error}, got success`);
}

const insecure = { execute: [client.allowInsecureRequests] };
const config = await client.discovery(new URL(ISSUER), CLIENT_ID, CLIENT_SECRET, undefined, insecure);
const meta = config.serverMetadata();
assert.equal(meta.issuer, ISSUER);
assert.equal(meta.authorization_response_iss_parameter_supported, true);
assert.ok(meta.grant_types_supported.includes('refresh_token'));
assert.ok(!meta.prompt_values_supported.includes('consent'), 'consent is not offered');
ok('discovery: issuer matches, RFC 9207 iss advertised, refresh_token grant');

// Code + PKCE + nonce, with iss in the response (openid-client requires it once advertised).
const browser = new Browser();
let a = await start(config);
let back = await browser.visit(a.url);
assert.equal(back.searchParams.get('iss'), ISSUER);
const tokens = await client.authorizationCodeGrant(config, back, a.checks);
const claims = tokens.claims();
assert.equal(claims.nonce, a.checks.expectedNonce);
assert.equal(typeof claims.auth_time, 'number');
assert.ok(tokens.refresh_token, 'offline_access gives a refresh token');
ok('code + PKCE + nonce; iss in the authorization response; auth_time present');

// Userinfo, with the scheme spelled the way openid-client does and in lower case.
const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
assert.equal(info.sub, claims.sub);
const lower = await fetch(meta.userinfo_endpoint, {
  headers: { authorization: `bearer ${tokens.access_token}` },
});
assert.equal(lower.status, 200, 'lower-case bearer is accepted');
assert.equal((await lower.json()).sub, claims.sub);
ok('userinfo: Bearer and lower-case bearer');

// max_age: a recent enough session answers silently with the original auth_time; an older
// one is sent to DingTalk again (and prompt=none then says login_required).
a = await start(config, { max_age: '600', prompt: 'none' });
back = await browser.visit(a.url);
let t = await client.authorizationCodeGrant(config, back, { ...a.checks, maxAge: 600 });
assert.equal(t.claims().auth_time, claims.auth_time);
await sleep(2100);
a = await start(config, { max_age: '1', prompt: 'none' });
back = await browser.visit(a.url);
const e = await refused(client.authorizationCodeGrant(config, back, { ...a.checks, maxAge: 1 }), 'login_required');
assert.equal(back.searchParams.get('iss'), ISSUER, 'iss in error responses too');
const scans = browser.scans;
a = await start(config, { max_age: '1' });
back = await browser.visit(a.url);
assert.equal(browser.scans, scans + 1, 'max_age exceeded: DingTalk login again');
t = await client.authorizationCodeGrant(config, back, { ...a.checks, maxAge: 1 });
assert.ok(t.claims().auth_time > claims.auth_time, 'a new auth_time');
ok(`max_age: silent when recent, re-authentication when older (${e.error})`);

// prompt combinations.
for (const prompt of ['none login', 'login none', 'none consent']) {
  a = await start(config, { prompt });
  back = await browser.visit(a.url);
  await refused(client.authorizationCodeGrant(config, back, a.checks), 'invalid_request');
}
a = await start(config, { prompt: 'login' });
back = await browser.visit(a.url);
assert.equal(browser.scans, scans + 2, 'prompt=login: DingTalk login again');
await client.authorizationCodeGrant(config, back, a.checks);
ok('prompt: none with anything else is invalid_request; login re-authenticates');

// Refresh token rotation: the new one works, the used one is refused, and its replay
// revokes the whole grant (the newest refresh token too).
const r1 = tokens.refresh_token;
const second = await client.refreshTokenGrant(config, r1);
assert.ok(second.refresh_token && second.refresh_token !== r1, 'rotated');
assert.equal(second.claims().sub, claims.sub);
const third = await client.refreshTokenGrant(config, second.refresh_token);
await refused(client.refreshTokenGrant(config, r1), 'invalid_grant');
await refused(client.refreshTokenGrant(config, third.refresh_token), 'invalid_grant');
ok('refresh tokens rotate; a replayed one revokes the grant');

// Code replay: the second redemption fails and the tokens of the first are refused.
a = await start(config);
back = await browser.visit(a.url);
const first = await client.authorizationCodeGrant(config, back, a.checks);
await client.fetchUserInfo(config, first.access_token, first.claims().sub);
await refused(client.authorizationCodeGrant(config, back, a.checks), 'invalid_grant');
const revoked = await fetch(meta.userinfo_endpoint, {
  headers: { authorization: `Bearer ${first.access_token}` },
});
assert.equal(revoked.status, 401, 'the access token of a replayed code is refused');
await refused(client.refreshTokenGrant(config, first.refresh_token), 'invalid_grant');
ok('code replay: refused, and the tokens issued from the code are revoked');

// Two replicas: a code redeemed at one cannot be redeemed at the other.
const path = new URL(ISSUER).pathname;
const other = new client.Configuration(
  { ...meta, token_endpoint: `${REPLICA2}${path}/token`, userinfo_endpoint: `${REPLICA2}${path}/userinfo` },
  CLIENT_ID,
  CLIENT_SECRET,
);
client.allowInsecureRequests(other);
a = await start(config);
back = await browser.visit(a.url);
const atOne = await client.authorizationCodeGrant(config, back, a.checks);
await refused(client.authorizationCodeGrant(other, back, a.checks), 'invalid_grant');
const atTwo = await fetch(`${REPLICA2}${path}/userinfo`, {
  headers: { authorization: `Bearer ${atOne.access_token}` },
});
assert.equal(atTwo.status, 401, 'replica 2 knows the grant was revoked');
a = await start(config);
back = await browser.visit(a.url);
const redeemedAtTwo = await client.authorizationCodeGrant(other, back, a.checks);
assert.equal(redeemedAtTwo.claims().sub, claims.sub, 'replica 2 redeems a fresh code');
ok('two replicas: the second redemption fails');
console.log('strict client: all checks passed');
