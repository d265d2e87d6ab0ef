// A real OpenID Provider (panva's oidc-provider) for Samskab's end-to-end tests of the
// gateway's OIDC sign-in. Test-only: plain http on loopback, in-memory state, keys made at
// start, logins that need no browser. crates/testkit/src/oidc.rs starts and drives it.
//
// Protocol: `node server.mjs` listens on 127.0.0.1 on a free port and prints exactly one
// line of JSON to stdout when ready, {"issuer":"http://127.0.0.1:PORT"}; everything else
// goes to stderr. It exits when its stdin closes, so a test process that dies takes it along.
//
// Clients:
//   samskab-cc   confidential (client_secret_basic or _post, secret samskab-cc-secret),
//                client_credentials; the token's sub is the client id.
//   samskab-web  public (PKCE S256 required), authorization_code + refresh_token, redirect
//                http://127.0.0.1/callback (native client: any loopback port matches).
//
// Resources (RFC 8707 `resource`; any value is accepted, plain strings too): the access
// token is a JWT (typ at+jwt) with aud = the resource, scope `api`, RS256, 300 s. Variants:
//   samskab-api-long          aud samskab-api-long, 2 days
//   <aud>;ttl=<s>;alg=ES256   options after `;` (ttl in seconds, alg RS256 or ES256);
//                             aud is the part before the first `;`
//
// Login without a browser: the authorization request names the subject in login_hint;
// GET /interaction/<uid> logs that subject in and grants what was asked for (openid
// scopes, `api` on each resource), then redirects to /auth/<uid>. No cookie is needed:
// the interaction is found by the uid in the path, and a request to /auth/<uid> without
// the resume cookie gets it added here (the cookie's value is that uid).
//
// Test-only endpoints:
//   POST /__rotate                  a new RSA signing key with a new kid; the one before
//                                   it stays in the JWKS (tokens it signed still verify),
//                                   older ones go; the ES256 key never changes
//   POST /__rotate?keep_old=false   the same, dropping every earlier RSA key from the JWKS
//   GET  /__stats                   {"jwks_requests":N,"discovery_requests":M}

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

// The test process holds stdin: when it closes (the test ended or died), stop.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

// oidc-provider prints notices with console.info; stdout carries only the ready line.
console.log = console.error;
console.info = console.error;
console.debug = console.error;
// Warnings that are true of every test run (in-memory state, unsigned cookies so that a
// client without a cookie jar can resume, the form body read here first) say nothing.
const quiet = [/cookies\.keys is missing/, /in-memory adapter/, /already parsed request body/];
const warn = console.warn.bind(console);
console.warn = (...args) => {
  if (!quiet.some((re) => re.test(String(args[0])))) warn(...args);
};

const { default: Provider } = await import('oidc-provider');

const JWKS_PATH = '/jwks';
const DISCOVERY_PATH = '/.well-known/openid-configuration';
const DEFAULT_TTL = 300;
const LONG_TTL = 2 * 24 * 60 * 60;
// Plain-string resources (not absolute URIs, which oidc-provider requires) are carried
// inside the provider under this prefix; the token's aud is the plain string again.
const PLAIN_PREFIX = 'urn:samskab-test:resource:';

function newKey(type) {
  const kid = `${type === 'rsa' ? 'rs256' : 'es256'}-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
  const { privateKey } = type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: type === 'rsa' ? 'RS256' : 'ES256', use: 'sig' };
}

// The first RSA key signs (oidc-provider signs with the first key of an algorithm).
let rsaKeys = [newKey('rsa')];
const ecKey = newKey('ec');

const stats = { jwks_requests: 0, discovery_requests: 0 };

function resourceServerInfo(identifier) {
  let value = identifier;
  if (value.startsWith(PLAIN_PREFIX)) value = decodeURIComponent(value.slice(PLAIN_PREFIX.length));
  const [audience, ...options] = value.split(';');
  let ttl = audience === 'samskab-api-long' ? LONG_TTL : DEFAULT_TTL;
  let alg = 'RS256';
  for (const option of options) {
    const [name, v] = option.split('=');
    if (name === 'ttl' && /^[0-9]+$/.test(v ?? '')) ttl = Number(v);
    else if (name === 'alg' && (v === 'RS256' || v === 'ES256')) alg = v;
  }
  return {
    scope: 'api',
    audience,
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg } },
  };
}

function configuration() {
  return {
    clients: [
      {
        client_id: 'samskab-cc',
        client_secret: 'samskab-cc-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'samskab-web',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
      },
    ],
    // samskab-cc may use client_secret_post as well as basic.
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
    jwks: { keys: [...rsaKeys, ecKey] },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      async claims() {
        return { sub: id };
      },
    }),
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, identifier) => resourceServerInfo(identifier),
      },
    },
    pkce: { required: () => true },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? DEFAULT_TTL,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? DEFAULT_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
    },
    clientBasedCORS: () => false,
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
}

let issuer;
let provider;
let handler;

function buildProvider() {
  const p = new Provider(issuer, configuration());
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'introspection.error',
    'revocation.error', 'userinfo.error', 'jwks.error', 'discovery.error']) {
    p.on(event, (_ctx, err) => console.error(`oidc-provider ${event}: ${err?.message}${err?.error_description ? ` (${err.error_description})` : ''}`));
  }
  provider = p;
  handler = p.callback();
}

// Resource values that are not absolute URIs are renamed to PLAIN_PREFIX + the value.
function carryResource(value) {
  return URL.canParse(value) && !value.includes(';') ? value : PLAIN_PREFIX + encodeURIComponent(value);
}

function rewriteResources(params) {
  const values = params.getAll('resource');
  if (!values.length) return false;
  params.delete('resource');
  for (const v of values) params.append('resource', carryResource(v));
  return true;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

// Logs the login_hint's subject in and grants what the authorization request asked for.
async function finishInteraction(req, res, uid) {
  const interaction = await provider.Interaction.find(uid);
  if (!interaction) {
    sendJson(res, 400, { error: 'invalid_request', error_description: 'interaction not found or expired' });
    return;
  }
  const { params } = interaction;
  const accountId = params.login_hint || interaction.session?.accountId;
  if (!accountId) {
    sendJson(res, 400, { error: 'invalid_request', error_description: 'login_hint (the subject to sign in) is required' });
    return;
  }
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  const resources = params.resource === undefined ? [] : [params.resource].flat();
  for (const resource of resources) grant.addResourceScope(resource, 'api');
  const grantId = await grant.save();
  interaction.result = { login: { accountId }, consent: { grantId } };
  await interaction.save(interaction.exp - Math.floor(Date.now() / 1000));
  res.writeHead(303, { location: interaction.returnTo, 'content-length': '0' });
  res.end();
}

async function handle(req, res) {
  const url = new URL(req.url, issuer);
  const path = url.pathname;

  if (path === JWKS_PATH) stats.jwks_requests += 1;
  if (path === DISCOVERY_PATH) stats.discovery_requests += 1;

  if (path === '/__stats' && req.method === 'GET') {
    sendJson(res, 200, stats);
    return;
  }
  if (path === '/__rotate' && req.method === 'POST') {
    const key = newKey('rsa');
    const keepOld = url.searchParams.get('keep_old') !== 'false';
    rsaKeys = keepOld ? [key, rsaKeys[0]] : [key];
    buildProvider();
    sendJson(res, 200, { kid: key.kid });
    return;
  }
  const interaction = /^\/interaction\/([^/]+)$/.exec(path);
  if (interaction && req.method === 'GET') {
    await finishInteraction(req, res, interaction[1]);
    return;
  }
  const resume = /^\/auth\/([^/]+)$/.exec(path);
  if (resume && !/(^|;\s*)_interaction_resume=/.test(req.headers.cookie ?? '')) {
    req.headers.cookie = [req.headers.cookie, `_interaction_resume=${resume[1]}`].filter(Boolean).join('; ');
  }

  if (url.searchParams.has('resource')) {
    rewriteResources(url.searchParams);
    req.url = `${url.pathname}?${url.searchParams}`;
  }
  if (req.method === 'POST' && (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    // Read here so that resources can be renamed; oidc-provider then takes req.body.
    const form = new URLSearchParams(await readBody(req));
    rewriteResources(form);
    req.body = form.toString();
  }

  handler(req, res);
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error('oidc test provider:', err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) });
    else res.end();
  });
});

server.listen(0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  buildProvider();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
