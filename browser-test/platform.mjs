// A test LTI 1.3 platform for browser-test/stock-lms.mjs: a stand-in for
// Canvas or Moodle that signs real RS256 JWTs with node:crypto.
//
//   GET  /                       a course page whose Launch form posts the
//                                third-party initiated login to ltigate, into
//                                an iframe named "tool" (as examples/demo does)
//   GET  /auth                   the OIDC authorization endpoint: checks the
//                                request like a platform does and answers with
//                                a form that auto-posts a signed id_token (an
//                                LtiResourceLinkRequest with the AGS claim) to
//                                the redirect_uri, with the state
//   GET  /jwks                   the platform's public key
//   POST /token                  OAuth2 client credentials with a JWT client
//                                assertion, verified against ltigate's JWKS
//   POST /lineitems/1/lineitem/scores
//                                the line item's scores endpoint: checks the
//                                bearer token, the media type and the score,
//                                and records every request
//
// Everything it received is kept in `platform.record` for the test to assert
// on (and to save as an artifact).

import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import http from 'node:http';

export const SCORE_SCOPE = 'https://purl.imsglobal.org/spec/lti-ags/scope/score';
export const SCORE_CONTENT_TYPE = 'application/vnd.ims.lis.v1.score+json';
const LEARNER_ROLE = 'http://purl.imsglobal.org/vocab/lis/v2/membership#Learner';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const CLAIM = 'https://purl.imsglobal.org/spec/lti/claim/';
const AGS_CLAIM = 'https://purl.imsglobal.org/spec/lti-ags/claim/endpoint';
/** Clock skew allowed on the tool's client assertion. */
const LEEWAY_SEC = 60;

const b64url = (data) => Buffer.from(data).toString('base64url');

/** An RS256 JWT with a kid header. */
export function signJwt(privateKey, kid, claims) {
  const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
}

/** Verifies an RS256 JWT against a JWK set; returns { header, claims } or throws why not. */
export function verifyJwt(token, jwks) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error('not a compact JWS (three parts)');
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    throw new Error('header or claims are not base64url JSON');
  }
  if (header.alg !== 'RS256') throw new Error(`alg is ${JSON.stringify(header.alg)}, not RS256`);
  if (!header.kid) throw new Error('no kid in the header');
  const jwk = (jwks?.keys ?? []).find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`kid ${header.kid} is not in the JWKS (has ${(jwks?.keys ?? []).map((k) => k.kid).join(', ')})`);
  const key = createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: 'jwk' });
  const ok = verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2], 'base64url'));
  if (!ok) throw new Error('the signature does not verify');
  return { header, claims };
}

/** An RSA-2048 key pair with its public JWK (kid, alg, use). */
export function rsaKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { kty, n, e } = publicKey.export({ format: 'jwk' });
  return { kid, privateKey, publicKey, jwk: { kty, kid, alg: 'RS256', use: 'sig', n, e } };
}

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function readBody(req, limit = 256 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

/**
 * Starts the platform on 127.0.0.1:port.
 *
 * options: port; gateway (ltigate's origin); target (the resource link's
 * target_link_uri on ltigate); toolJwks (async () => ltigate's published JWKS,
 * fetched for every token request); log (a function taking a line).
 */
export async function startPlatform({ port, gateway, target, toolJwks, log = () => {} }) {
  const base = `http://127.0.0.1:${port}`;
  const key = rsaKey('stock-platform-key-1');
  // A learner this LMS has never seen: the LMS app must create and enroll them.
  const sub = `stock-learner-${randomBytes(6).toString('hex')}`;
  const p = {
    base,
    issuer: base,
    clientId: 'stock-lms-client',
    deploymentId: 'stock-deployment-1',
    sub,
    resourceLinkId: 'stock-unit1-link',
    messageHint: 'stock-unit1',
    tokenUrl: `${base}/token`,
    lineitem: `${base}/lineitems/1/lineitem`,
    redirectUri: `${gateway}/lti/1p3/launch/`,
    jwks: { keys: [key.jwk] },
    record: { auth: [], token: [], scores: [] },
  };
  const nonces = new Set();
  const jtis = new Set();
  const tokens = new Map(); // access token -> scopes

  const coursePage = () => {
    const hidden = {
      iss: p.issuer,
      login_hint: p.sub,
      target_link_uri: target,
      lti_message_hint: p.messageHint,
      client_id: p.clientId,
      lti_deployment_id: p.deploymentId,
    };
    const inputs = Object.entries(hidden)
      .map(([n, v]) => `<input type="hidden" name="${n}" value="${escapeHtml(v)}">`)
      .join('\n');
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stock LMS 101 - Test platform</title>
<style>body{font-family:sans-serif;margin:1rem}iframe{width:100%;height:760px;border:1px solid #999}</style></head>
<body><h1>Stock LMS 101: Unit 1</h1>
<p>A test LTI platform at ${escapeHtml(base)}; the unit comes from the LMS through ltigate at ${escapeHtml(gateway)}.</p>
<form method="post" action="${escapeHtml(`${gateway}/lti/1p3/login/`)}" target="tool">
${inputs}
<button type="submit" id="launch">Launch</button></form>
<iframe name="tool" id="tool" title="Launched LTI tool" src="about:blank"></iframe>
</body></html>
`;
  };

  // The OIDC authentication request (response_mode=form_post), checked as a platform does.
  const auth = (params) => {
    const seen = Object.fromEntries(params);
    const entry = { params: seen, error: null };
    p.record.auth.push(entry);
    const expected = {
      scope: 'openid',
      response_type: 'id_token',
      response_mode: 'form_post',
      prompt: 'none',
      client_id: p.clientId,
      redirect_uri: p.redirectUri,
      login_hint: p.sub,
      lti_message_hint: p.messageHint,
    };
    for (const [name, value] of Object.entries(expected)) {
      if (params.getAll(name).length !== 1 || params.get(name) !== value) {
        entry.error = `${name} should be ${JSON.stringify(value)}, was ${JSON.stringify(params.getAll(name))}`;
        return entry;
      }
    }
    for (const name of ['state', 'nonce']) {
      if (!params.get(name)) {
        entry.error = `no ${name}`;
        return entry;
      }
    }
    if (nonces.has(params.get('nonce'))) {
      entry.error = 'the nonce was used before';
      return entry;
    }
    nonces.add(params.get('nonce'));
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: p.issuer,
      aud: p.clientId,
      sub: p.sub,
      iat: now,
      exp: now + 300,
      nonce: params.get('nonce'),
      name: 'Grace Hopper',
      given_name: 'Grace',
      family_name: 'Hopper',
      email: `${p.sub}@learners.example.edu`,
      locale: 'en-US',
      [`${CLAIM}version`]: '1.3.0',
      [`${CLAIM}message_type`]: 'LtiResourceLinkRequest',
      [`${CLAIM}deployment_id`]: p.deploymentId,
      [`${CLAIM}roles`]: [LEARNER_ROLE],
      [`${CLAIM}resource_link`]: { id: p.resourceLinkId, title: 'Unit 1' },
      [`${CLAIM}target_link_uri`]: target,
      [`${CLAIM}context`]: { id: 'stock-course-1', label: 'LMS101', title: 'Stock LMS 101' },
      [`${CLAIM}launch_presentation`]: { document_target: 'iframe', return_url: `${base}/` },
      [AGS_CLAIM]: { scope: [SCORE_SCOPE], lineitem: p.lineitem },
    };
    entry.claims = claims;
    return { ...entry, idToken: signJwt(key.privateKey, key.kid, claims) };
  };

  // Client credentials with a JWT client assertion (RFC 7523), as the LTI Security Framework says.
  const token = async (form) => {
    const entry = { grant_type: form.get('grant_type'), scope: form.get('scope'), error: null };
    p.record.token.push(entry);
    const refuse = (error) => {
      entry.error = error;
      return [400, { error: 'invalid_request', error_description: error }];
    };
    if (form.get('grant_type') !== 'client_credentials') return refuse('grant_type is not client_credentials');
    if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) return refuse('wrong client_assertion_type');
    let verified;
    try {
      verified = verifyJwt(form.get('client_assertion'), await toolJwks());
    } catch (e) {
      return refuse(`client_assertion: ${e.message}`);
    }
    const c = verified.claims;
    entry.assertion = c;
    const now = Math.floor(Date.now() / 1000);
    if (c.iss !== p.clientId || c.sub !== p.clientId) return refuse(`iss/sub are ${c.iss}/${c.sub}, not ${p.clientId}`);
    const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
    if (!aud.includes(p.tokenUrl)) return refuse(`aud ${JSON.stringify(c.aud)} does not name ${p.tokenUrl}`);
    if (!Number.isFinite(c.exp) || c.exp < now - LEEWAY_SEC) return refuse('expired or no exp');
    if (!Number.isFinite(c.iat) || c.iat > now + LEEWAY_SEC) return refuse('iat in the future or missing');
    if (!c.jti || jtis.has(c.jti)) return refuse('jti missing or replayed');
    jtis.add(c.jti);
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    if (!scopes.includes(SCORE_SCOPE)) return refuse(`scope ${form.get('scope')} lacks the score scope`);
    const access = randomBytes(24).toString('base64url');
    tokens.set(access, scopes);
    entry.issued = true;
    return [200, { access_token: access, token_type: 'Bearer', expires_in: 3600, scope: scopes.join(' ') }];
  };

  // The line item's scores endpoint (AGS 2.0 Score Publish Service).
  const score = (req, body) => {
    const entry = {
      at: new Date().toISOString(),
      contentType: req.headers['content-type'],
      body,
      status: 0,
      error: null,
    };
    p.record.scores.push(entry);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const refuse = (status, error) => {
      entry.status = status;
      entry.error = error;
      return [status, { error }];
    };
    if (!bearer || !tokens.has(bearer)) return refuse(401, 'no or unknown bearer token');
    if (!tokens.get(bearer).includes(SCORE_SCOPE)) return refuse(403, 'the token lacks the score scope');
    if ((req.headers['content-type'] ?? '').split(';')[0].trim() !== SCORE_CONTENT_TYPE) {
      return refuse(415, `content-type ${req.headers['content-type']} is not ${SCORE_CONTENT_TYPE}`);
    }
    let s;
    try {
      s = JSON.parse(body);
    } catch {
      return refuse(400, 'the body is not JSON');
    }
    entry.score = s;
    if (s.userId !== p.sub) return refuse(400, `userId ${JSON.stringify(s.userId)} is not the launch's sub`);
    if (!Number.isFinite(s.scoreGiven) || !Number.isFinite(s.scoreMaximum) || s.scoreMaximum <= 0) {
      return refuse(400, 'scoreGiven/scoreMaximum are not numbers (scoreMaximum > 0)');
    }
    if (!['Initialized', 'Started', 'InProgress', 'Submitted', 'Completed'].includes(s.activityProgress)) {
      return refuse(400, `activityProgress ${s.activityProgress}`);
    }
    if (!['FullyGraded', 'Pending', 'PendingManual', 'Failed', 'NotReady'].includes(s.gradingProgress)) {
      return refuse(400, `gradingProgress ${s.gradingProgress}`);
    }
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d)$/.test(s.timestamp ?? '')) {
      return refuse(400, `timestamp ${JSON.stringify(s.timestamp)} is not ISO 8601 with fractional seconds`);
    }
    entry.status = 200;
    return [200, {}];
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, base);
    try {
      if (req.method === 'GET' && url.pathname === '/') return send(res, 200, 'text/html; charset=utf-8', coursePage());
      if (req.method === 'GET' && url.pathname === '/jwks') return send(res, 200, 'application/json', JSON.stringify(p.jwks));
      if (url.pathname === '/favicon.ico') return send(res, 204, 'image/x-icon', '');
      if (url.pathname === '/auth' && (req.method === 'GET' || req.method === 'POST')) {
        const params = req.method === 'GET' ? url.searchParams : new URLSearchParams(await readBody(req));
        const entry = auth(params);
        if (entry.error) {
          log(`platform: refused the authentication request: ${entry.error}`);
          return send(res, 400, 'text/plain; charset=utf-8', `The test platform refused the authentication request: ${entry.error}`);
        }
        return send(
          res,
          200,
          'text/html; charset=utf-8',
          `<!doctype html><html><head><title>Launching...</title></head><body onload="document.forms[0].submit()">
<form method="post" action="${escapeHtml(p.redirectUri)}">
<input type="hidden" name="id_token" value="${escapeHtml(entry.idToken)}">
<input type="hidden" name="state" value="${escapeHtml(params.get('state'))}">
</form></body></html>`,
        );
      }
      if (req.method === 'POST' && url.pathname === '/token') {
        const [status, body] = await token(new URLSearchParams(await readBody(req)));
        if (status !== 200) log(`platform: refused a token request: ${body.error_description}`);
        return send(res, status, 'application/json', JSON.stringify(body));
      }
      if (req.method === 'POST' && url.pathname === new URL(`${p.lineitem}/scores`).pathname) {
        const [status, body] = score(req, await readBody(req));
        log(`platform: score ${status}: ${p.record.scores.at(-1).body}${status === 200 ? '' : ` (${body.error})`}`);
        return send(res, status, 'application/json', JSON.stringify(body));
      }
      return send(res, 404, 'text/plain', 'not found on the test platform');
    } catch (e) {
      log(`platform: ${req.method} ${url.pathname} failed: ${e?.stack ?? e}`);
      return send(res, 500, 'text/plain', 'test platform error');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  p.close = () => new Promise((resolve) => server.close(() => resolve()).closeAllConnections?.());
  /** The scores the platform accepted. */
  p.acceptedScores = () => p.record.scores.filter((s) => s.status === 200).map((s) => s.score);
  /** A digest of the platform's signing key, for the log. */
  p.keyDigest = createHash('sha256').update(key.jwk.n).digest('hex').slice(0, 12);
  return p;
}
