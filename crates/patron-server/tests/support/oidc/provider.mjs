// A real OpenID Connect provider for patron's SSO tests: panva/oidc-provider (installed into
// target/oidc-provider by .ci/run from this folder's package-lock.json). Discovery, the
// authorization code flow with PKCE, RS256-signed ID tokens, JWKS and userinfo are the
// provider's own; only the login screen is replaced: the account that logs in next is set by
// the test (`POST /test/next-login?email=…`), as a person typing at the provider would.
//
// node provider.mjs PORT REDIRECT_URI CLIENT_ID CLIENT_SECRET   (prints READY when listening)
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import http from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

const [port, redirectUri, clientId, clientSecret] = process.argv.slice(2);
const dir = process.env.OIDC_PROVIDER_DIR;
const { default: Provider } = await import(pathToFileURL(join(dir, 'node_modules/oidc-provider/lib/index.js')).href);

let nextLogin = null;
// A signing key of this run's own (not the library's development key).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['patron-test-cookie-key'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: id, email_verified: true, name: id.split('@')[0] };
      },
    };
  },
});

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (req.method === 'POST' && url.pathname === '/test/next-login') {
      nextLogin = url.searchParams.get('email');
      res.writeHead(204).end();
      return;
    }
    const m = url.pathname.match(/^\/interaction\/([^/]+)$/);
    if (m) {
      const details = await provider.interactionDetails(req, res);
      if (!nextLogin) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('no login set by the test');
        return;
      }
      const accountId = nextLogin;
      const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
      return;
    }
    callback(req, res);
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
  }
});
server.listen(Number(port), '127.0.0.1', () => console.log('READY'));
