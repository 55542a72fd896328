// The Admin Portal: the page a customer's IT admin reaches through a portal link, for one
// organization and one intent. `audit_logs`: browse, filter, inspect (verified in the browser)
// and export the organization's events. `log_streams`: set up and watch its log streams. It
// reuses the dashboard's components (viewer.js, exports.js, streams.js) against /portal/api,
// which the server keeps to the session's organization and intent.
//
// Routes: #/events, #/events/<event>, #/exports (audit_logs); #/streams (log_streams).

import { createApi } from './api.js';
import { mountExports } from './exports.js';
import { streamsCard } from './streams.js';
import { announce, busy } from './ui.js';
import { h, showError } from './dom.js';
import { mountEventsViewer } from './viewer.js';

const main = document.getElementById('main');
const nav = document.querySelector('.main-nav');
const navList = nav.querySelector('ul');
const sessionBox = document.querySelector('.session-box');
const organizationLabel = document.querySelector('.session-organization');
const endButton = document.querySelector('.sign-out');
const brand = document.querySelector('.portal-brand');

let session = null;
let cleanups = [];
let viewer = null;

const api = createApi({
  basePath: '/portal/api',
  onUnauthorized: () => showEnded('This portal session has ended.'),
});

function leavePage() {
  for (const cleanup of cleanups.splice(0)) {
    try {
      cleanup();
    } catch (error) {
      console.error(error);
    }
  }
  viewer = null;
}

function showEnded(title) {
  leavePage();
  session = null;
  nav.hidden = true;
  sessionBox.hidden = true;
  main.replaceChildren(
    h(
      'section',
      { class: 'card portal-ended' },
      h('h1', { tabindex: '-1', class: 'page-title', text: title }),
      h('p', { text: 'Open the Admin Portal again from your application to get a new link.' }),
    ),
  );
}

function showBranding() {
  const application = session.application ?? {};
  const name = application.name || 'Admin Portal';
  brand.replaceChildren(
    application.logo_url
      ? h('img', { class: 'portal-logo', src: application.logo_url, alt: '' })
      : h('span', { class: 'brand-mark', 'aria-hidden': 'true', text: name.slice(0, 1).toUpperCase() }),
    h('span', { class: 'brand-name', text: name }),
  );
  if (session.return_url) {
    brand.href = session.return_url;
    brand.title = `Back to ${name}`;
  } else {
    brand.removeAttribute('href');
  }
  document.title = `${session.organization.name} · ${name} Admin Portal`;
  organizationLabel.textContent = session.organization.name;
  sessionBox.hidden = false;
}

const PAGES = {
  audit_logs: [
    ['events', 'Audit logs'],
    ['exports', 'Exports'],
  ],
  log_streams: [['streams', 'Log streams']],
};

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const pages = PAGES[session.intent];
  const page = pages.some(([name]) => name === parts[0]) ? parts[0] : pages[0][0];
  return { page, eventId: page === 'events' ? parts[1] : undefined };
}

function showNav(active) {
  const pages = PAGES[session.intent];
  navList.replaceChildren(
    ...pages.map(([name, label]) =>
      h('li', {}, h('a', { href: `#/${name}`, 'aria-current': name === active ? 'page' : undefined, text: label })),
    ),
  );
  nav.hidden = pages.length < 2;
}

function heading(text) {
  return h('h1', { tabindex: '-1', class: 'page-title', text });
}

function doneLink() {
  return session.success_url
    ? h('p', { class: 'portal-done' }, h('a', { class: 'button primary', href: session.success_url, text: 'Done' }))
    : null;
}

function route() {
  if (!session) return;
  const { page, eventId } = parseRoute();
  if (page === 'events' && viewer) {
    if (eventId) viewer.showEvent(eventId);
    else viewer.showList();
    return;
  }
  leavePage();
  showNav(page);
  announce('');
  const organizationId = session.organization.id;
  const content = h('div', { class: 'page-content' });
  if (page === 'events') {
    main.replaceChildren(heading(`${session.organization.name}: audit logs`), content);
    viewer = mountEventsViewer(content, {
      // The application's action names are not this organization's to list.
      api: { ...api, listActions: undefined },
      organizationId,
      eventId,
      eventHref: (event) => `#/events/${encodeURIComponent(event.id)}`,
      onOpenEvent: (event) => {
        location.hash = `#/events/${encodeURIComponent(event.id)}`;
      },
      listHref: '#/events',
      onBack: () => {
        location.hash = '#/events';
      },
    });
    const current = viewer;
    cleanups.push(() => current.destroy());
  } else if (page === 'exports') {
    main.replaceChildren(heading(`${session.organization.name}: exports`), content);
    mountExports(content, { api, organizationId, onLeave: (cleanup) => cleanups.push(cleanup) });
  } else {
    let alive = true;
    cleanups.push(() => {
      alive = false;
    });
    main.replaceChildren(
      heading(`${session.organization.name}: log streams`),
      h(
        'p',
        { class: 'muted' },
        'Send this organization’s audit log events to your SIEM or storage as they happen. ' +
          'Choose a destination and follow its steps; the stream’s state shows whether deliveries succeed.',
      ),
      content,
      doneLink(),
    );
    content.append(streamsCard({ api, organizationId, isAlive: () => alive }));
  }
  main.querySelector('h1')?.focus({ preventScroll: true });
}

endButton.addEventListener('click', async () => {
  busy(endButton, true);
  try {
    await api.signOut();
    const back = session?.return_url;
    showEnded('You ended this portal session.');
    if (back) main.querySelector('section').append(h('p', {}, h('a', { href: back, text: 'Back to the application' })));
  } catch (error) {
    showError(main.querySelector('.error-box') ?? main.appendChild(h('div', { class: 'error-box', role: 'alert' })), error, 'Could not end the session');
  } finally {
    busy(endButton, false);
  }
});

async function start() {
  try {
    session = await api.getSession();
  } catch (error) {
    if (error.status === 401) showEnded('This portal session has ended.');
    else showEnded(`The portal could not load: ${error.message}`);
    return;
  }
  api.setCsrfToken(session.csrf_token);
  showBranding();
  window.addEventListener('hashchange', route);
  route();
}

start();
