// The Admin Portal and the embedded viewer in headless Chromium against a running Vellum: links
// opened as an IT admin's browser opens them, what a portal session can and cannot reach, an
// export downloaded, a stream set up that reaches a receiver of this suite, refused links, and
// the viewer embedded in a page of an allowed origin and of another.
//
// Needs, besides helpers.mjs's variables, VELLUM_EMBEDDING_PORT (a free loopback port: the
// customer's page is served there, as http://allowed.localhost:PORT, an origin the server allows
// to embed the viewer, and as http://other.localhost:PORT, one it does not) and
// VELLUM_PORTAL_LINK_LIFETIME_MS (the server's link lifetime, shortened for the run).

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';

import { environment, eventually, launchBrowser, publicApiOk, screenshot, uniqueSuffix, unlabelledControls, watchPage } from './helpers.mjs';

describe('the admin portal and the embedded viewer', () => {
  let env;
  let browser;
  let context;
  let page;
  let watcher;
  let receiver;
  let receiverUrl;
  const received = [];
  const suffix = uniqueSuffix();
  const action = `portal.viewed_${suffix}`;
  let mine;
  let theirs;
  const myEvents = [];
  const theirEvents = [];
  let firstLink;

  const embeddingPort = Number(process.env.VELLUM_EMBEDDING_PORT);
  let customerSite;
  let viewerToken;
  const linkLifetimeMs = Number(process.env.VELLUM_PORTAL_LINK_LIFETIME_MS);

  async function emit(organization, actorId, list) {
    const event = {
      action,
      occurred_at: new Date(Date.now() - 60_000 + list.length * 1000).toISOString(),
      actor: { id: actorId, type: 'user', name: `${actorId} ${suffix}` },
      targets: [{ id: 'doc_1', type: 'doc' }],
      context: { location: '192.0.2.1', user_agent: 'portal-browser-test' },
    };
    await publicApiOk('POST', '/audit_logs/events', { organization_id: organization, event }, [200]);
    list.push(actorId);
  }

  async function generate(organization, intent, extra = {}) {
    const answer = await publicApiOk('POST', '/portal/generate_link', { organization, intent, ...extra }, [201]);
    return answer.link;
  }

  /** What the page's own fetch of a portal API path answers. */
  async function pageFetch(path) {
    return page.evaluate(async (url) => {
      const response = await fetch(url);
      return { status: response.status, body: await response.text() };
    }, path);
  }

  let setupError = null;
  const scenario = (name, fn) =>
    test(name, async () => {
      if (setupError) throw setupError;
      await fn();
    });

  before(async () => {
    try {
      env = environment();
      if (!embeddingPort || !linkLifetimeMs) {
        throw new Error('the portal suite needs VELLUM_EMBEDDING_PORT and VELLUM_PORTAL_LINK_LIFETIME_MS (the Rust test browser sets them)');
      }
      // A customer's site: its page embeds the viewer with the token of this run.
      customerSite = createServer((request, response) => {
        const title = request.headers.host.startsWith('allowed.') ? 'Customer app' : 'Another site';
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        response.end(
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body>` +
            `<h1>${title}</h1><script src="${env.baseUrl}/embed/viewer.js"></script>` +
            `<vellum-audit-log token="${viewerToken}"></vellum-audit-log></body></html>`,
        );
      });
      await new Promise((resolve, reject) => {
        customerSite.once('error', reject);
        customerSite.listen(embeddingPort, '127.0.0.1', resolve);
      });
      receiver = createServer((request, response) => {
        let body = '';
        request.on('data', (chunk) => {
          body += chunk;
        });
        request.on('end', () => {
          received.push({ headers: request.headers, body });
          response.writeHead(200).end();
        });
      });
      await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      receiverUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
      await publicApiOk('POST', `/audit_logs/actions/${action}/schemas`, { targets: [{ type: 'doc' }] }, [201]);
      mine = (await publicApiOk('POST', '/organizations', { name: `Portal Customer ${suffix}` }, [201])).id;
      theirs = (await publicApiOk('POST', '/organizations', { name: `Other Customer ${suffix}` }, [201])).id;
      for (const actor of ['alice', 'bob', 'carol']) await emit(mine, actor, myEvents);
      for (const actor of ['mallory', 'trent']) await emit(theirs, actor, theirEvents);
      browser = await launchBrowser();
      context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
      page = await context.newPage();
      page.setDefaultTimeout(15000);
      watcher = watchPage(page);
    } catch (error) {
      setupError = error;
    }
  });

  afterEach(async () => {
    const problems = watcher ? watcher.problems() : [];
    assert.deepEqual(problems, [], 'the page raised no exception and broke no Content-Security-Policy rule');
    if (page && !setupError && page.url().includes('/portal/')) {
      assert.deepEqual(await unlabelledControls(page), [], 'every form control has a label');
    }
  });

  after(async () => {
    if (browser) await browser.close();
    if (receiver) await new Promise((resolve) => receiver.close(resolve));
    if (customerSite) await new Promise((resolve) => customerSite.close(resolve));
  });

  scenario('an audit_logs link opens the portal on its organization’s events only', async () => {
    firstLink = await generate(mine, 'audit_logs', {
      return_url: 'https://app.example.com/settings',
      external_user_id: `admin-${suffix}`,
      it_contact_emails: ['it@customer.test'],
    });
    await page.goto(firstLink);
    await page.getByRole('heading', { name: `Portal Customer ${suffix}: audit logs` }).waitFor();
    assert.ok(page.url().endsWith('/portal/'), `the secret left the address bar: ${page.url()}`);
    assert.equal(await page.locator('.brand-name').innerText(), 'Acme Test App');
    assert.equal(await page.locator('.portal-brand').getAttribute('href'), 'https://app.example.com/settings');
    const rows = page.locator('table.events-table tbody tr');
    await eventually(async () => (await rows.count()) >= 4, { message: 'three events and the session record' });
    const texts = await rows.evaluateAll((all) => all.map((row) => row.innerText).join('\n'));
    for (const actor of ['alice', 'bob', 'carol']) assert.ok(texts.includes(`${actor} ${suffix}`), texts);
    for (const actor of ['mallory', 'trent']) assert.ok(!texts.includes(actor), texts);
    assert.ok(texts.includes('vellum.portal.session_started'), 'the opening itself is in the trail');
    await screenshot(page, 'portal-events');

    // The detail of an event is verified in the browser against the organization's log.
    await rows.filter({ hasText: `alice ${suffix}` }).getByRole('link').first().click();
    await page.getByText(/Verified: included in the signed checkpoint/).waitFor();
    await screenshot(page, 'portal-event-verified');
  });

  scenario('another organization’s ids in URLs, API calls and cursors are a 404', async () => {
    const theirEvent = (await publicApiOk('GET', `/audit_logs/events?organization_id=${theirs}`)).data[0].id;
    for (const path of [
      `/portal/api/audit_logs/events/${theirEvent}`,
      `/portal/api/audit_logs/events?organization_id=${theirs}`,
      `/portal/api/audit_logs/events?after=${theirEvent}`,
      `/portal/api/audit_logs/log/entries?organization_id=${theirs}&start=0&end=1`,
    ]) {
      const answer = await pageFetch(path);
      assert.equal(answer.status, 404, `${path}: ${answer.body}`);
    }
    await page.goto(`${env.baseUrl}/portal/#/events/${theirEvent}`);
    await page.getByRole('alert').filter({ hasText: 'not found' }).waitFor();
    await screenshot(page, 'portal-other-organization');
  });

  scenario('an export downloads this organization’s events', async () => {
    await page.goto(`${env.baseUrl}/portal/#/exports`);
    await page.getByRole('heading', { name: `Portal Customer ${suffix}: exports` }).waitFor();
    await page.getByRole('button', { name: 'Start export' }).click();
    const download = page.getByRole('link', { name: 'Download' });
    await download.waitFor();
    const [file] = await Promise.all([page.waitForEvent('download'), download.click()]);
    const stream = await file.createReadStream();
    let text = '';
    for await (const chunk of stream) text += chunk;
    assert.ok(text.includes(`alice ${suffix}`) && !text.includes('mallory'), text);
    await screenshot(page, 'portal-export');
    const trail = (await publicApiOk('GET', `/audit_logs/events?organization_id=${mine}&actions[]=vellum.portal.export_created`)).data;
    assert.equal(trail.length, 1, 'the export is in the organization’s trail');
    assert.equal(trail[0].actor.id, `admin-${suffix}`);
  });

  scenario('a log_streams link sets up a stream that reaches the receiver', async () => {
    const link = await generate(mine, 'log_streams', { success_url: 'https://app.example.com/done' });
    await page.goto(link);
    await page.getByRole('heading', { name: `Portal Customer ${suffix}: log streams` }).waitFor();
    await page.getByLabel('Destination').selectOption('Datadog');
    await page.getByText('Organization Settings → API Keys').waitFor();
    await page.getByLabel('Destination').selectOption('GenericHttps');
    await page.getByText('copy the signing secret').waitFor();
    await page.getByLabel('URL').fill(receiverUrl);
    await page.getByRole('button', { name: 'Add the stream' }).click();
    await page.getByText('Stream added: events logged from now on are delivered.').waitFor();
    assert.match(await page.locator('.secret-box code.secret').innerText(), /^whsec_/);
    await screenshot(page, 'portal-stream-added');
    // The connection test: one event, told in the page.
    await page.getByRole('button', { name: 'Send a test' }).click();
    await page.getByText('The destination accepted the test event').waitFor();
    assert.ok(
      received.some((request) => JSON.parse(request.body).some((event) => event.action === 'vellum.stream.test')),
      'the test event reached the receiver',
    );
    await emit(mine, 'dave', myEvents);
    const delivered = await eventually(
      () => received.flatMap((request) => JSON.parse(request.body)).find((event) => event.actor?.id === 'dave'),
      { message: 'the new event at the receiver', timeout: 20000 },
    );
    assert.equal(delivered.organization_id, mine);
    assert.ok(received.every((request) => request.headers['webhook-signature']?.startsWith('v1,')));
    await page.reload();
    const row = page.locator('.streams-table tbody tr');
    await eventually(async () => !(await row.innerText()).includes('never'), { message: 'a last delivery shown' });
    assert.ok((await row.innerText()).includes('active'));
    assert.equal(await page.getByRole('link', { name: 'Done' }).getAttribute('href'), 'https://app.example.com/done');
    await screenshot(page, 'portal-stream-delivered');
    // Nothing of the trail from a log_streams session.
    assert.equal((await pageFetch('/portal/api/audit_logs/events')).status, 403);
  });

  scenario('reused, altered, revoked and expired links are refused', async () => {
    const refused = async (link, name) => {
      const response = await page.goto(link);
      assert.equal(response.status(), 403, name);
      await page.getByRole('heading', { name: 'This link cannot be opened' }).waitFor();
    };
    await refused(firstLink, 'reused');
    await screenshot(page, 'portal-link-refused');
    const fresh = await generate(mine, 'audit_logs');
    const altered = fresh.replace(/secret=(.)/, (_, first) => `secret=${first === 'a' ? 'b' : 'a'}`);
    await refused(altered, 'altered');
    const revoked = await generate(mine, 'audit_logs', { external_user_id: `leaver-${suffix}` });
    await publicApiOk('POST', '/portal/revoke_link', { organization: mine, external_user_id: `leaver-${suffix}` }, [204]);
    await refused(revoked, 'revoked');
    // A session open in the page ends when its links are revoked.
    await page.goto(await generate(mine, 'audit_logs', { external_user_id: `open-${suffix}` }));
    await page.getByRole('heading', { name: `Portal Customer ${suffix}: audit logs` }).waitFor();
    await publicApiOk('POST', '/portal/revoke_link', { organization: mine, external_user_id: `open-${suffix}` }, [204]);
    await page.reload();
    await page.getByRole('heading', { name: 'This portal session has ended.' }).waitFor();
    await screenshot(page, 'portal-session-ended');
    const expiring = await generate(mine, 'audit_logs');
    await new Promise((resolve) => setTimeout(resolve, linkLifetimeMs + 200));
    await refused(expiring, 'expired');
  });

  scenario('the embedded viewer renders from an allowed origin and is refused from another', async () => {
    viewerToken = (await publicApiOk('POST', '/audit_logs/viewer_tokens', { organization_id: mine, expires_in: 600 }, [201])).token;
    await page.goto(`http://allowed.localhost:${embeddingPort}/settings/audit`);
    const rows = page.locator('vellum-audit-log table.events-table tbody tr');
    await eventually(async () => (await rows.count()) >= 4, { message: 'the embedded trail' });
    const texts = await rows.evaluateAll((all) => all.map((row) => row.innerText).join('\n'));
    assert.ok(texts.includes(`alice ${suffix}`) && !texts.includes('mallory'), texts);
    await screenshot(page, 'embedded-viewer');

    await page.goto(`http://other.localhost:${embeddingPort}/`);
    await page.locator('vellum-audit-log .error-box').waitFor();
    assert.equal(await rows.count(), 0, 'nothing of the trail reaches another origin');
    await screenshot(page, 'embedded-viewer-refused');
  });
});
