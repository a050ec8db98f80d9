// The operator's console on the web page (issue 17): nodes table, events timeline, chart, admin
// buttons with confirmation, in a real browser (Debian chromium, headless) against a real
// tokenmgr fed through the agents' route (PUT /api/nodes/<node>).
// Run: tests/browser/run.sh   (LM_BUILD_DIR picks the build, default build/release)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Pool, launchBrowser, shot, startTokenmgr, watchedPage } from './harness.mjs';

const INDEX = '/html/tmpl/index';
const TOKEN = 's3cret-token-for-console-tests';
let browser;

before(async () => { browser = await launchBrowser(); });
after(async () => { if (browser) await browser.close(); });

// An agent's heartbeat, as license-holder sends it (console::AgentReportJson).
async function report(server, node, { pod = 'flexdirect-' + node, state, license = '', version = '1.0',
  events = [] }, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch(server.url + '/api/nodes/' + encodeURIComponent(node), {
    method: 'PUT', headers, body: JSON.stringify({ pod, state, license, version, events }),
  });
  return { status: r.status, body: await r.text() };
}

async function marks(server) {
  return (await fetch(server.url + '/api/console/marks')).json();
}

// A page whose confirm() dialogs are answered by `answer` (true: accept) and recorded.
const consolePage = (context, baseUrl, answer = () => false) =>
  watchedPage(context, baseUrl, answer);

function assertClean(problems) {
  assert.deepEqual(problems.dialogs, [], 'no alert or prompt may ever fire');
  assert.deepEqual(problems.external, [], 'no request may leave tokenmgr');
  assert.deepEqual(problems.errors, [], 'no script errors');
}

async function withServer(opts, fn) {
  const pool = new Pool();
  for (const n of opts.licenses || ['license1', 'license2']) pool.addLicense(n);
  const server = await startTokenmgr({ poolDir: pool.dir, authToken: opts.authToken });
  const context = await browser.newContext(opts.context || { viewport: { width: 1280, height: 900 } });
  try {
    await fn(server, context, pool);
  } finally {
    await context.close();
    const exit = await server.stop();
    pool.close();
    assert.equal(exit.code, 0, 'tokenmgr exits 0 on SIGTERM: ' + JSON.stringify(exit));
  }
}

const nodeOrder = (page) => page.$$eval('#nodes-body tr', (rows) => rows.map((r) => r.dataset.node));

describe('nodes and events', () => {
  test('waiting nodes first; new nodes and events appear without a reload', async () => {
    await withServer({}, async (server, context) => {
      assert.equal((await report(server, 'node-a', { state: 'held', license: 'license1' })).status, 200);
      assert.equal((await report(server, 'node-b', { state: 'waiting',
        events: [{ kind: 'wait_start', detail: 'no free license' }] })).status, 200);
      const { page, problems } = await consolePage(context, server.url);
      await page.goto(server.url + INDEX);
      // Server-rendered: the waiting node first, with how long it waits.
      assert.deepEqual(await nodeOrder(page), ['node-b', 'node-a']);
      assert.match(await page.textContent('#nodes-body tr[data-node=node-b] td.wait'), /^\d+ (ms|s)$/);
      assert.equal(await page.textContent('#n-waiting'), '1');
      assert.equal(await page.textContent('#events-list li .ev-detail'), 'no free license');
      assert.equal(await page.locator('#chart polyline').count(), 3, 'the chart has three lines');
      assert.match(await page.textContent('#chart-title'), /Licenses held, free and nodes waiting/);
      await page.waitForSelector('#live.on');

      // Another node starts waiting: it shows up live, after node-b (which waits longer).
      assert.equal((await report(server, 'node-c', { state: 'waiting',
        events: [{ kind: 'wait_start', detail: 'node-c queued' }] })).status, 200);
      await page.waitForSelector('#nodes-body tr[data-node=node-c]', { timeout: 6000 });
      assert.deepEqual(await nodeOrder(page), ['node-b', 'node-c', 'node-a']);
      await page.waitForFunction(() => document.querySelector('#events-list li .ev-detail')
          ?.textContent === 'node-c queued', null, { timeout: 6000 });
      const items = await page.$$eval('#events-list li', (lis) => lis.map((li) => Number(li.dataset.seq)));
      assert.deepEqual(items, [...items].sort((a, b) => b - a), 'newest first');
      assert.equal(new Set(items).size, items.length, 'each event once');
      assert.equal(await page.textContent('#n-waiting'), '2');
      // The script redrew the chart from /api/console/samples (same text alternative).
      assert.match(await page.textContent('#chart-desc'), /nodes waiting|No samples yet/);
      await shot(page, '20-console-live');
      assertClean(problems);
    });
  });
});

describe('admin buttons (JavaScript on)', () => {
  test('cordon asks first: dismissed changes nothing, accepted cordons; disable likewise', async () => {
    await withServer({}, async (server, context) => {
      await report(server, 'node-a', { state: 'held', license: 'license1' });
      let answer = false;
      const { page, problems, confirms } = await consolePage(context, server.url, () => answer);
      await page.goto(server.url + INDEX);
      await page.waitForSelector('#live.on');
      const cordon = '#nodes-body tr[data-node=node-a] form[data-admin=cordon] button';

      await page.click(cordon);
      assert.equal(confirms.length, 1);
      assert.match(confirms[0], /^Cordon node-a\? Its agent gives its license back within one heartbeat/);
      await page.waitForTimeout(300);  // a request would be on its way now: there is none
      assert.deepEqual((await marks(server)).cordoned, {}, 'dismissed: nothing changed');
      assert.equal(new URL(page.url()).pathname, INDEX, 'the form was not posted either');

      answer = true;
      await page.click(cordon);
      await page.waitForSelector('#flash.ok >> text=node-a is cordoned.');
      const m = await marks(server);
      assert.equal(m.cordoned['node-a'].actor, 'web (127.0.0.1)');
      await page.waitForSelector('#nodes-body tr[data-node=node-a] form[data-admin=uncordon]');
      await page.waitForFunction(() => [...document.querySelectorAll('#events-list li.admin')]
          .some((li) => li.textContent.includes('cordon') && li.textContent.includes('node-a')));

      // Disable from the pool table.
      await page.click('#pool-body tr[data-name=license2] form[data-admin=disable] button');
      assert.match(confirms.at(-1), /^Disable license2\? Its holder takes it off within one heartbeat/);
      await page.waitForSelector('#flash.ok >> text=license2 is disabled.');
      await page.waitForSelector('#pool-body tr[data-name=license2] .badge.disabled');
      await page.waitForSelector('#pool-body tr[data-name=license2] form[data-admin=enable]');
      assert.ok('license2' in (await marks(server)).disabled);
      await shot(page, '21-console-cordoned');

      // Uncordon, dismissed then accepted.
      answer = false;
      await page.click('#nodes-body tr[data-node=node-a] form[data-admin=uncordon] button');
      assert.match(confirms.at(-1), /^Uncordon node-a\?/);
      await page.waitForTimeout(300);
      assert.ok('node-a' in (await marks(server)).cordoned, 'dismissed: still cordoned');
      answer = true;
      await page.click('#nodes-body tr[data-node=node-a] form[data-admin=uncordon] button');
      await page.waitForSelector('#flash.ok >> text=node-a is uncordoned.');
      assert.deepEqual((await marks(server)).cordoned, {});
      assertClean(problems);
    });
  });

  test('with auth on the token is asked once, and the actor says so', async () => {
    await withServer({ authToken: TOKEN }, async (server, context) => {
      await report(server, 'node-a', { state: 'held', license: 'license1' }, TOKEN);
      const { page, problems } = await consolePage(context, server.url, () => true);
      await page.goto(server.url + INDEX);
      await page.waitForSelector('#live.on');
      await page.click('#nodes-body tr[data-node=node-a] form[data-admin=cordon] button');
      await page.waitForSelector('#auth-form', { state: 'visible' });
      await page.fill('#auth-input', TOKEN);
      await page.click('#auth-form button[type=submit]');
      await page.waitForSelector('#flash.ok >> text=node-a is cordoned.');
      assert.equal((await marks(server)).cordoned['node-a'].actor, 'web (token)');
      assertClean(problems);
    });
  });
});

describe('admin buttons (JavaScript off)', () => {
  test('the first post only asks; confirming cordons; cancel changes nothing', async () => {
    await withServer({ context: { javaScriptEnabled: false } }, async (server, context) => {
      await report(server, 'node-a', { state: 'held', license: 'license1' });
      const { page, problems } = await consolePage(context, server.url);
      await page.goto(server.url + INDEX);
      await Promise.all([page.waitForNavigation(),
        page.click('#nodes-body tr[data-node=node-a] form[data-admin=cordon] button')]);
      assert.equal(new URL(page.url()).pathname, '/html/tmpl/cordon');
      assert.equal(await page.textContent('#confirm-h'), 'Cordon node-a?');
      assert.match(await page.textContent('#confirm-text'), /within one heartbeat/);
      assert.deepEqual((await marks(server)).cordoned, {}, 'nothing changed yet');
      await shot(page, '22-console-nojs-confirm');

      await Promise.all([page.waitForNavigation(), page.click('#confirm-cancel')]);
      assert.equal(new URL(page.url()).pathname, INDEX);
      assert.deepEqual((await marks(server)).cordoned, {}, 'cancelled: nothing changed');

      await Promise.all([page.waitForNavigation(),
        page.click('#nodes-body tr[data-node=node-a] form[data-admin=cordon] button')]);
      await Promise.all([page.waitForNavigation(), page.click('#confirm-form button[type=submit]')]);
      assert.equal(new URL(page.url()).pathname, INDEX);
      assert.match(await page.textContent('#flash'), /node-a is cordoned\./);
      assert.equal(await page.locator('#nodes-body tr[data-node=node-a] form[data-admin=uncordon]').count(), 1);
      assert.ok('node-a' in (await marks(server)).cordoned);

      // A forged cross-site post is refused and changes nothing.
      const forged = await context.request.post(server.url + '/html/tmpl/uncordon', {
        form: { csrf: 'guess', node: 'node-a', confirm: 'yes' },
        headers: { Origin: 'http://evil.example' },
      });
      assert.equal(forged.status(), 403);
      assert.ok('node-a' in (await marks(server)).cordoned);
      assertClean(problems);
    });
  });

  test('with auth on the confirmation page carries the token field', async () => {
    await withServer({ authToken: TOKEN, context: { javaScriptEnabled: false } },
        async (server, context) => {
          const { page, problems } = await consolePage(context, server.url);
          await page.goto(server.url + INDEX);
          await Promise.all([page.waitForNavigation(),
            page.click('#pool-body tr[data-name=license1] form[data-admin=disable] button')]);
          await page.fill('#confirm-form input[name=token]', 'wrong');
          await Promise.all([page.waitForNavigation(), page.click('#confirm-form button[type=submit]')]);
          assert.match(await page.textContent('#flash'), /access token is missing or wrong/);
          assert.deepEqual((await marks(server)).disabled, {});
          await Promise.all([page.waitForNavigation(),
            page.click('#pool-body tr[data-name=license1] form[data-admin=disable] button')]);
          await page.fill('#confirm-form input[name=token]', TOKEN);
          await Promise.all([page.waitForNavigation(), page.click('#confirm-form button[type=submit]')]);
          assert.match(await page.textContent('#flash'), /license1 is disabled\./);
          assert.equal((await marks(server)).disabled.license1.actor, 'web (token)');
          assertClean(problems);
        });
  });
});

describe('script injection', () => {
  const DETAIL = '"><img src=x onerror=alert(1)><script>alert(2)</script><svg onload=alert(3)>';
  const VERSION = '<img src=x onerror=alert(4)>';
  test('hostile names are refused; event details and versions render as text and never run',
      async () => {
        await withServer({}, async (server, context) => {
          // Names are labels: markup in them is refused before it is stored.
          assert.equal((await report(server, 'node-p', { pod: '<script>alert(5)</script>',
            state: 'waiting' })).status, 400);
          assert.equal((await report(server, 'node-l', { state: 'held',
            license: '<img src=x onerror=alert(6)>' })).status, 400);
          assert.equal((await report(server, 'node-e', { state: 'waiting',
            events: [{ kind: 'claim', license: '"><script>alert(7)</script>' }] })).status, 400);
          const byActor = await fetch(server.url + '/api/licenses/license1/disable', {
            method: 'POST', headers: { 'X-Actor': '<script>alert(8)</script>' } });
          assert.equal(byActor.status, 400);
          // Free text: stored as given.
          assert.equal((await report(server, 'node-x', { state: 'waiting', version: VERSION,
            events: [{ kind: 'wait_start', detail: DETAIL }] })).status, 200);
          for (const js of [false, true]) {
            const ctx = js ? context : await browser.newContext({ javaScriptEnabled: false });
            const { page, problems } = await consolePage(ctx, server.url);
            await page.goto(server.url + INDEX);
            if (js) {
              await page.waitForSelector('#live.on');
              // One more, arriving through the script's refresh rather than the server's page.
              await report(server, 'node-x', { state: 'waiting', version: VERSION,
                events: [{ kind: 'withdraw', detail: DETAIL + ' live' }] });
              await page.waitForFunction(() => document.querySelector('#events-list li .ev-detail')
                  ?.textContent.endsWith(' live'), null, { timeout: 6000 });
            }
            const details = await page.$$eval('#events-list .ev-detail', (qs) => qs.map((q) => q.textContent));
            assert.ok(details.includes(DETAIL), 'detail shown verbatim: ' + details.join(' | '));
            assert.equal(await page.textContent('#nodes-body tr[data-node=node-x] td[data-label=Version]'),
                VERSION);
            const injected = await page.$$eval('main img, main script, main [onerror], main [onload]',
                (els) => els.length);
            assert.equal(injected, 0, 'no element was injected');
            await page.waitForTimeout(300);
            await shot(page, `23-console-injection-${js ? 'js' : 'nojs'}`);
            assertClean(problems);
            if (!js) await ctx.close();
          }
        });
      });
});

describe('narrow screen (400 px)', () => {
  for (const js of [true, false]) {
    test(`nodes, chart and timeline fit and buttons are usable (JavaScript ${js ? 'on' : 'off'})`,
        async () => {
          await withServer({ licenses: ['license1', 'license-with-a-rather-long-name-10'],
            context: { viewport: { width: 400, height: 900 }, javaScriptEnabled: js } },
          async (server, context) => {
            await report(server, 'gpu-node-1.cluster.example.com', { state: 'held',
              license: 'license1', version: '2.3.0-rc1+build.1234' });
            await report(server, 'gpu-node-2.cluster.example.com', { state: 'waiting',
              events: [{ kind: 'wait_start', detail: 'x'.repeat(200) }] });
            const { page, problems } = await consolePage(context, server.url, () => true);
            await page.goto(server.url + INDEX);
            if (js) await page.waitForSelector('#live.on');
            const layout = await page.evaluate(() => {
              const outside = (sel, card) => [...document.querySelectorAll(sel)]
                  .filter((c) => c.getBoundingClientRect().right > card.right + 0.5)
                  .map((c) => c.tagName + ':' + c.textContent.slice(0, 40));
              const nodes = document.querySelector('#nodes-card').getBoundingClientRect();
              const events = document.querySelector('#events-card').getBoundingClientRect();
              const chart = document.querySelector('#chart').getBoundingClientRect();
              return {
                pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                cards: [...document.querySelectorAll('.card')].map((c) => c.getBoundingClientRect().right)
                    .filter((r) => r > 400),
                nodeCells: outside('#nodes-table td', nodes),
                eventParts: outside('#events-list li, #events-list li *', events),
                chartRight: chart.right,
                chartHeight: chart.height,
                buttons: [...document.querySelectorAll('form.admin button')].filter((b) => {
                  const r = b.getBoundingClientRect();
                  return r.width < 24 || r.height < 20 || r.right > 400 || r.left < 0;
                }).map((b) => b.textContent),
              };
            });
            assert.ok(layout.pageOverflow <= 0, 'no horizontal page scroll: ' + layout.pageOverflow);
            assert.deepEqual(layout.cards, [], 'every card inside the screen');
            assert.deepEqual(layout.nodeCells, [], 'node cells off the card');
            assert.deepEqual(layout.eventParts, [], 'timeline off the card');
            assert.ok(layout.chartRight <= 400 && layout.chartHeight > 60, JSON.stringify(layout));
            assert.deepEqual(layout.buttons, [], 'admin buttons too small or off screen');
            await shot(page, `24-console-narrow-${js ? 'js' : 'nojs'}`);
            // The button works at this width.
            const button = page.locator(
                '#nodes-body tr[data-node="gpu-node-1.cluster.example.com"] form[data-admin=cordon] button');
            if (js) {
              await button.click();
              await page.waitForSelector('#flash.ok >> text=is cordoned.');
            } else {
              await Promise.all([page.waitForNavigation(), button.click()]);
              assert.equal(await page.textContent('#confirm-h'),
                  'Cordon gpu-node-1.cluster.example.com?');
              const overflow = await page.evaluate(() =>
                  document.documentElement.scrollWidth - document.documentElement.clientWidth);
              assert.ok(overflow <= 0, 'the confirmation page fits too: ' + overflow);
            }
            assertClean(problems);
          });
        });
  }
});
