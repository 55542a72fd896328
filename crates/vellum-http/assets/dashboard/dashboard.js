// The operator dashboard: sign-in, hash routing and the pages. The components it shares with
// the Admin Portal and the embeddable viewer are modules of their own: the events viewer
// (viewer.js), the exports panel (exports.js), the log streams card (streams.js), the DOM
// helpers (dom.js) and small pieces of page (ui.js); the in-browser log verification is
// verify.js.
//
// Routes: #/organizations, #/organizations/<org>, #/organizations/<org>/events/<event>,
// #/organizations/<org>/exports, #/organizations/<org>/settings, #/schemas, #/schemas/<action>,
// #/api-keys, #/health. All server data goes into the page through textContent/createElement.

import { createApi } from './api.js';
import { mountExports } from './exports.js';
import { streamsCard } from './streams.js';
import { announce, busy, confirmDialog, errorBox, pager, tableWrap } from './ui.js';
import {
  copyText,
  field,
  h,
  localInputToIso,
  showError,
  splitList,
  timeElement,
  uniqueId,
} from './dom.js';
import { mountEventsViewer } from './viewer.js';

const main = document.getElementById('main');
const statusRegion = document.getElementById('status');
const nav = document.querySelector('.main-nav');
const sessionBox = document.querySelector('.session-box');
const sessionEmail = document.querySelector('.session-email');
const signOutButton = document.querySelector('.sign-out');

const api = createApi({
  onUnauthorized: () => {
    // Only a session that was there and ended sends the operator back to the sign-in form.
    if (session) showSignIn('Your session has ended. Sign in again.');
  },
});

let session = null;
let cleanups = [];
let current = null; // {route, orgId?, tab?, viewer?}
let firstRender = true;

// ---------------------------------------------------------------------------------------------
// Small helpers

function onLeave(fn) {
  cleanups.push(fn);
}

function leavePage() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (error) {
      console.error(error);
    }
  }
  current = null;
}

function pageHeading(text, ...rest) {
  return h('h1', { tabindex: '-1', class: 'page-title' }, text, ...rest);
}

function focusHeading() {
  const heading = main.querySelector('h1');
  if (heading) heading.focus({ preventScroll: true });
}

function setMain(...children) {
  main.replaceChildren(...children);
}

function orgHref(orgId, tab = '') {
  return `#/organizations/${encodeURIComponent(orgId)}${tab ? `/${tab}` : ''}`;
}

function schemaHref(action) {
  return `#/schemas/${encodeURIComponent(action)}`;
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** A pager whose buttons move `state.cursor` along the last answer's cursors and reload. */
function cursorPager(label, state, load) {
  return pager(
    label,
    () => {
      state.cursor = { before: state.answer.list_metadata.before };
      load();
    },
    () => {
      state.cursor = { after: state.answer.list_metadata.after };
      load();
    },
  );
}



// ---------------------------------------------------------------------------------------------
// Session

function showApp() {
  nav.hidden = false;
  sessionBox.hidden = false;
  sessionEmail.textContent = session ? session.email : '';
}

function showSignIn(message) {
  leavePage();
  session = null;
  api.setCsrfToken(null);
  nav.hidden = true;
  sessionBox.hidden = true;
  document.title = 'Sign in · Vellum';
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, spellcheck: 'false' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'button primary wide', text: 'Sign in' });
  const errors = errorBox();
  const form = h(
    'form',
    { class: 'sign-in-form card', novalidate: true },
    h('h1', { tabindex: '-1', class: 'page-title', text: 'Sign in' }),
    h('p', { class: 'muted', text: 'Operator dashboard of this Vellum server.' }),
    field('Email', email),
    field('Password', password),
    errors,
    submit,
  );
  form.addEventListener('submit', async (submitEvent) => {
    submitEvent.preventDefault();
    if (!email.value.trim() || !password.value) {
      showError(errors, new Error('Enter your email and password.'));
      (email.value.trim() ? password : email).focus();
      return;
    }
    showError(errors, null);
    busy(submit, true);
    try {
      session = await api.signIn(email.value.trim(), password.value);
      password.value = '';
      announce('');
      showApp();
      if (!location.hash || location.hash === '#' || location.hash === '#/') location.replace('#/organizations');
      route();
    } catch (error) {
      showError(errors, error);
      password.select();
      password.focus();
    } finally {
      busy(submit, false);
    }
  });
  setMain(h('div', { class: 'sign-in-page' }, form));
  if (message) showError(errors, new Error(message));
  email.focus();
}

signOutButton.addEventListener('click', async () => {
  busy(signOutButton, true);
  try {
    await api.signOut();
    showSignIn();
    announce('You are signed out.');
  } catch (error) {
    if (error.status !== 401) announce(`Could not sign out: ${error.message}`, 'error');
  } finally {
    busy(signOutButton, false);
  }
});

// ---------------------------------------------------------------------------------------------
// Routing

function parseRoute(hash) {
  const path = hash.replace(/^#\/?/, '').split('?')[0];
  const parts = path.split('/').filter(Boolean).map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  });
  if (parts.length === 0) return { name: 'home' };
  const [first, second, third, fourth] = parts;
  if (first === 'organizations') {
    if (!second) return { name: 'organizations' };
    if (!third) return { name: 'organization', orgId: second, tab: 'events' };
    if (third === 'events' && fourth) return { name: 'organization', orgId: second, tab: 'events', eventId: fourth };
    if (third === 'events' && !fourth) return { name: 'organization', orgId: second, tab: 'events' };
    if ((third === 'exports' || third === 'settings') && !fourth) return { name: 'organization', orgId: second, tab: third };
  }
  if (first === 'schemas' && parts.length <= 2) return second ? { name: 'schema', action: second } : { name: 'schemas' };
  if (first === 'api-keys' && parts.length === 1) return { name: 'api-keys' };
  if (first === 'health' && parts.length === 1) return { name: 'health' };
  return { name: 'not-found' };
}

function markNav(name) {
  const section = name === 'organization' ? 'organizations' : name === 'schema' ? 'schemas' : name;
  for (const link of nav.querySelectorAll('a[data-nav]')) {
    if (link.dataset.nav === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function route() {
  if (!session) return;
  // In-page anchors (the skip link) are not routes.
  if (location.hash && location.hash !== '#' && !location.hash.startsWith('#/')) return;
  const next = parseRoute(location.hash);
  if (next.name === 'home') {
    location.replace('#/organizations');
    return;
  }
  markNav(next.name);
  const focus = !firstRender;
  firstRender = false;
  // Moving between an organization's event list and one of its events keeps the viewer (and
  // its filters, page and live mode).
  if (
    next.name === 'organization' &&
    current &&
    current.route.name === 'organization' &&
    current.orgId === next.orgId &&
    current.tab === 'events' &&
    next.tab === 'events' &&
    current.viewer
  ) {
    current.route = next;
    if (next.eventId) current.viewer.showEvent(next.eventId);
    else current.viewer.showList();
    return;
  }
  leavePage();
  if (statusRegion.dataset.kind !== 'sticky') announce('');
  statusRegion.dataset.kind = '';
  current = { route: next };
  const pages = {
    organizations: renderOrganizations,
    organization: renderOrganization,
    schemas: renderSchemas,
    schema: renderSchema,
    'api-keys': renderApiKeys,
    health: renderHealth,
    'not-found': renderNotFound,
  };
  pages[next.name](next);
  if (focus) focusHeading();
}

window.addEventListener('hashchange', route);

// The skip link moves focus to the content without touching the route.
document.querySelector('.skip-link').addEventListener('click', (click) => {
  click.preventDefault();
  main.focus();
});

function renderNotFound() {
  document.title = 'Not found · Vellum';
  setMain(pageHeading('Page not found'), h('p', {}, 'There is no page here. ', h('a', { href: '#/organizations', text: 'Go to organizations' }), '.'));
}

// ---------------------------------------------------------------------------------------------
// Organizations

function renderOrganizations() {
  document.title = 'Organizations · Vellum';
  const state = { search: '', cursor: null, answer: null };
  let sequence = 0;

  const searchInput = h('input', { type: 'search', name: 'search', autocomplete: 'off' });
  const searchForm = h(
    'form',
    { class: 'inline-form', role: 'search' },
    field('Search organizations', searchInput),
    h('button', { type: 'submit', class: 'button', text: 'Search' }),
  );
  const nameInput = h('input', { type: 'text', name: 'name', autocomplete: 'off', required: true, maxlength: '255' });
  const createButton = h('button', { type: 'submit', class: 'button primary', text: 'Create organization' });
  const createErrors = errorBox();
  const createForm = h(
    'form',
    { class: 'inline-form', 'aria-labelledby': 'create-org-heading', novalidate: true },
    field('Name', nameInput),
    createButton,
  );
  const listErrors = errorBox();
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data-table' },
    h('caption', { class: 'visually-hidden', text: 'Organizations, newest first' }),
    h('thead', {}, h('tr', {}, ['Name', 'ID', 'Domains', 'Created'].map((name) => h('th', { scope: 'col', text: name })))),
    tbody,
  );
  const wrap = tableWrap('Organizations', table);
  const empty = h('div', { class: 'empty-state', hidden: true });
  const pages = cursorPager('Organization pages', state, load);

  async function load() {
    const mine = ++sequence;
    wrap.setAttribute('aria-busy', 'true');
    try {
      const answer = await api.listOrganizations({ limit: 20, search: state.search, ...(state.cursor ?? {}) });
      if (mine !== sequence) return;
      state.answer = answer;
      showError(listErrors, null);
      const organizations = answer.data ?? [];
      tbody.replaceChildren(
        ...organizations.map((organization) =>
          h(
            'tr',
            {},
            h('td', {}, h('a', { href: orgHref(organization.id), text: organization.name })),
            h('td', {}, h('code', { class: 'small', text: organization.id })),
            h('td', { text: (organization.domains ?? []).map((domain) => domain.domain).join(', ') }),
            h('td', { class: 'nowrap' }, timeElement(organization.created_at)),
          ),
        ),
      );
      wrap.hidden = organizations.length === 0;
      empty.hidden = organizations.length !== 0;
      empty.replaceChildren(
        h('p', {
          text: state.search
            ? `No organization name contains \u201c${state.search}\u201d.`
            : state.cursor
              ? 'No more organizations in this direction.'
              : 'No organizations yet. Create the first one above, or with POST /organizations.',
        }),
      );
      pages.update(answer.list_metadata);
    } catch (error) {
      if (mine === sequence) showError(listErrors, error, 'Could not load organizations');
    } finally {
      if (mine === sequence) wrap.removeAttribute('aria-busy');
    }
  }

  searchForm.addEventListener('submit', (submit) => {
    submit.preventDefault();
    state.search = searchInput.value.trim();
    state.cursor = null;
    load();
  });
  createForm.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      showError(createErrors, new Error('Enter a name for the organization.'));
      nameInput.focus();
      return;
    }
    showError(createErrors, null);
    busy(createButton, true);
    try {
      const organization = await api.createOrganization({ name });
      announce(`Created organization \u201c${organization.name}\u201d.`, 'sticky');
      navigate(orgHref(organization.id));
    } catch (error) {
      showError(createErrors, error, 'Could not create the organization');
    } finally {
      busy(createButton, false);
    }
  });

  setMain(
    pageHeading('Organizations'),
    h(
      'div',
      { class: 'panels' },
      h('section', { class: 'card', 'aria-labelledby': 'create-org-heading' }, h('h2', { id: 'create-org-heading', text: 'Create organization' }), createForm, createErrors),
      h('section', { class: 'card', 'aria-labelledby': 'find-org-heading' }, h('h2', { id: 'find-org-heading', text: 'Find an organization' }), searchForm),
    ),
    listErrors,
    wrap,
    empty,
    pages.node,
  );
  load();
}

function renderOrganization(routeInfo) {
  const { orgId } = routeInfo;
  const tab = routeInfo.tab;
  current.orgId = orgId;
  current.tab = tab;
  const title = h('span', { text: orgId });
  const heading = pageHeading(title);
  const idLine = h('p', { class: 'muted small' }, 'ID ', h('code', { text: orgId }));
  const tabs = h(
    'nav',
    { class: 'tabs', 'aria-label': 'Organization' },
    h(
      'ul',
      {},
      [
        ['events', 'Events', orgHref(orgId)],
        ['exports', 'Exports', orgHref(orgId, 'exports')],
        ['settings', 'Settings', orgHref(orgId, 'settings')],
      ].map(([key, label, href]) => h('li', {}, h('a', { href, text: label, 'aria-current': key === tab ? 'page' : null }))),
    ),
  );
  const loadErrors = errorBox();
  const content = h('div', { class: 'tab-panel' });
  setMain(
    h('p', { class: 'breadcrumbs' }, h('a', { href: '#/organizations', text: 'Organizations' }), ' / '),
    heading,
    idLine,
    loadErrors,
    tabs,
    content,
  );
  document.title = `${tab[0].toUpperCase()}${tab.slice(1)} · Vellum`;

  let alive = true;
  onLeave(() => {
    alive = false;
  });
  const organizationPromise = api.getOrganization(orgId).then(
    (organization) => {
      if (!alive) return organization;
      title.textContent = organization.name;
      document.title = `${organization.name} · ${tab[0].toUpperCase()}${tab.slice(1)} · Vellum`;
      return organization;
    },
    (error) => {
      if (alive) {
        showError(loadErrors, error, 'Could not load the organization');
        if (error.status === 404) {
          tabs.hidden = true;
          content.hidden = true;
          if (current && current.viewer) current.viewer.destroy();
        }
      }
      return null;
    },
  );

  if (tab === 'events') {
    const viewer = mountEventsViewer(content, {
      api,
      organizationId: orgId,
      eventId: routeInfo.eventId,
      eventHref: (event) => `${orgHref(orgId, 'events')}/${encodeURIComponent(event.id)}`,
      onOpenEvent: (event) => {
        location.hash = `${orgHref(orgId, 'events')}/${encodeURIComponent(event.id)}`;
      },
      listHref: orgHref(orgId),
      onBack: () => {
        location.hash = orgHref(orgId);
      },
    });
    current.viewer = viewer;
    onLeave(() => viewer.destroy());
  } else if (tab === 'exports') {
    mountExports(content, { api, organizationId: orgId, onLeave });
  } else {
    renderSettings(content, orgId, organizationPromise, (name) => {
      title.textContent = name;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Settings

const RETENTION_DAYS = [
  ...Array.from({ length: 11 }, (_, index) => [(index + 1) * 30, `${(index + 1) * 30} days (${index + 1} month${index ? 's' : ''})`]),
  ...Array.from({ length: 10 }, (_, index) => [(index + 1) * 365, `${(index + 1) * 365} days (${index + 1} year${index ? 's' : ''})`]),
];

function renderSettings(container, orgId, organizationPromise, onRenamed) {
  let alive = true;
  onLeave(() => {
    alive = false;
  });
  const nameInput = h('input', { type: 'text', name: 'name', autocomplete: 'off', required: true, maxlength: '255' });
  const saveName = h('button', { type: 'submit', class: 'button primary', text: 'Save name' });
  const nameErrors = errorBox();
  const nameStatus = h('p', { class: 'success-text', role: 'status' });
  const renameForm = h('form', { class: 'inline-form', novalidate: true }, field('Organization name', nameInput), saveName);

  const retention = h(
    'select',
    { name: 'retention_period_in_days' },
    h('option', { value: '', text: 'Not set' }),
    RETENTION_DAYS.map(([days, label]) => h('option', { value: String(days), text: label })),
  );
  const saveRetention = h('button', { type: 'submit', class: 'button primary', text: 'Save retention' });
  const retentionErrors = errorBox();
  const retentionStatus = h('p', { class: 'success-text', role: 'status' });
  const retentionCurrent = h('p', { class: 'muted small' }, 'Loading the current period\u2026');
  const retentionForm = h(
    'form',
    { class: 'inline-form', novalidate: true },
    field('Retention period', retention, 'How long this organization\u2019s events are kept.'),
    saveRetention,
  );

  const holdReason = h('input', { type: 'text', name: 'reason', autocomplete: 'off', maxlength: '500' });
  const holdReasonField = field('Reason', holdReason, 'Recorded with the hold in this organization\u2019s events.');
  const holdButton = h('button', { type: 'submit', class: 'button primary', text: 'Place a legal hold' });
  const holdErrors = errorBox();
  const holdStatus = h('p', { class: 'success-text', role: 'status' });
  const holdCurrent = h('p', { class: 'muted small' }, 'Loading the legal hold\u2026');
  const holdForm = h('form', { class: 'inline-form', novalidate: true }, holdReasonField, holdButton);
  let held = false;

  const eraseId = h('input', { type: 'text', name: 'actor_id', autocomplete: 'off', maxlength: '1024', required: true });
  const eraseTargetId = h('input', { type: 'text', name: 'target_id', autocomplete: 'off', maxlength: '1024' });
  const eraseConfirm = h('input', { type: 'checkbox', name: 'confirm' });
  const eraseButton = h('button', { type: 'submit', class: 'button danger', text: 'Erase this person’s data' });
  const eraseErrors = errorBox();
  const eraseStatus = h('p', { class: 'success-text', role: 'status' });
  const eraseForm = h(
    'form',
    { class: 'inline-form', novalidate: true },
    field('Person’s id', eraseId, 'Every actor or target with this id loses its id, name and metadata; an actor also its location and user agent.'),
    field('Id as a target (optional)', eraseTargetId, 'Only if your application names the same person differently as a target.'),
    h('label', { class: 'confirm-check' }, eraseConfirm, ' I understand that the erased values cannot be recovered.'),
    eraseButton,
  );

  const RECORD_ACTIONS = ['vellum.retention.purged', 'vellum.legal_hold.set', 'vellum.legal_hold.lifted', 'vellum.personal_data.erased'];
  const recordsBody = h('tbody');
  const recordsErrors = errorBox();
  const recordsEmpty = h('p', { class: 'muted small', text: 'No purge, hold or erasure yet.', hidden: true });
  const recordsTable = h(
    'table',
    { class: 'data-table records-table' },
    h('caption', { class: 'visually-hidden', text: 'Purges, legal holds and erasures of this organization' }),
    h('thead', {}, h('tr', {}, ['When', 'What', 'By', 'Log position'].map((name) => h('th', { scope: 'col', text: name })))),
    recordsBody,
  );

  function describeRecord(record) {
    const metadata = record.metadata ?? {};
    switch (record.action) {
      case 'vellum.retention.purged':
        return `Purged ${metadata.events_purged} events older than ${metadata.retention_period_in_days} days`;
      case 'vellum.legal_hold.set':
        return `Legal hold placed${metadata.reason ? `: ${metadata.reason}` : ''}`;
      case 'vellum.legal_hold.lifted':
        return 'Legal hold lifted';
      case 'vellum.personal_data.erased':
        return `Erased a person’s data from ${metadata.events_erased} events (positions ${metadata.first_log_index}–${metadata.last_log_index})`;
      default:
        return record.action;
    }
  }

  async function loadRecords() {
    try {
      const answer = await api.listEvents({ organization_id: orgId, actions: RECORD_ACTIONS, limit: 20 });
      if (!alive) return;
      showError(recordsErrors, null);
      const records = answer.data ?? [];
      recordsEmpty.hidden = records.length > 0;
      recordsTable.hidden = records.length === 0;
      recordsBody.replaceChildren(
        ...records.map((record) =>
          h(
            'tr',
            {},
            h('td', {}, timeElement(record.occurred_at)),
            h('td', { text: describeRecord(record) }),
            h('td', { text: record.actor.type === 'vellum' ? 'Vellum' : `${record.actor.type} ${record.actor.name ?? record.actor.id}` }),
            h('td', { text: String(record.log_index) }),
          ),
        ),
      );
    } catch (error) {
      if (alive) showError(recordsErrors, error, 'Could not load the records');
    }
  }

  container.replaceChildren(
    h('section', { class: 'card', 'aria-labelledby': 'rename-heading' }, h('h2', { id: 'rename-heading', text: 'Rename' }), renameForm, nameErrors, nameStatus),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'retention-heading' },
      h('h2', { id: 'retention-heading', text: 'Retention' }),
      retentionCurrent,
      retentionForm,
      retentionErrors,
      retentionStatus,
      h(
        'p',
        { class: 'muted small' },
        'Events past the period are purged every hour. Each purge is recorded in this organization\u2019s events ' +
          '(action vellum.retention.purged), and the log still verifies.',
      ),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'hold-heading' },
      h('h2', { id: 'hold-heading', text: 'Legal hold' }),
      holdCurrent,
      holdForm,
      holdErrors,
      holdStatus,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'erase-heading' },
      h('h2', { id: 'erase-heading', text: 'Erase a person’s data' }),
      h(
        'p',
        { class: 'muted small' },
        'For a request to erase personal data (GDPR art. 17). The events stay, with that person’s values removed; the erasure ' +
          'is recorded in this organization’s events (action vellum.personal_data.erased) and the log still verifies. ' +
          'Refused while a legal hold is in place.',
      ),
      eraseForm,
      eraseErrors,
      eraseStatus,
    ),
    streamsCard({ api, organizationId: orgId, isAlive: () => alive }),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'records-heading' },
      h('h2', { id: 'records-heading', text: 'Purges, holds and erasures' }),
      recordsEmpty,
      recordsTable,
      recordsErrors,
    ),
  );
  loadRecords();

  eraseForm.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    eraseStatus.textContent = '';
    const actorId = eraseId.value.trim();
    if (!actorId) {
      showError(eraseErrors, new Error('Enter the person’s id.'));
      eraseId.focus();
      return;
    }
    if (!eraseConfirm.checked) {
      showError(eraseErrors, new Error('Confirm that the erased values cannot be recovered.'));
      eraseConfirm.focus();
      return;
    }
    showError(eraseErrors, null);
    busy(eraseButton, true);
    try {
      const answer = await api.erase(orgId, actorId, eraseTargetId.value.trim());
      eraseStatus.textContent = answer.events_erased
        ? `Erased from ${answer.events_erased} events; recorded at log position ${answer.records.join(', ')}.`
        : 'No event of this organization names this id: nothing was erased.';
      eraseId.value = '';
      eraseTargetId.value = '';
      eraseConfirm.checked = false;
      loadRecords();
    } catch (error) {
      showError(eraseErrors, error, 'Could not erase');
    } finally {
      busy(eraseButton, false);
    }
  });

  function showHold(hold) {
    held = hold.legal_hold;
    holdCurrent.textContent = held
      ? `On hold since ${hold.since}: nothing of this organization is purged.${hold.reason ? ` Reason: ${hold.reason}` : ''}`
      : 'No legal hold: events past the retention period are purged.';
    holdButton.textContent = held ? 'Lift the legal hold' : 'Place a legal hold';
    holdReasonField.hidden = held;
  }

  api.getLegalHold(orgId).then(
    (hold) => alive && showHold(hold),
    (error) => {
      if (alive) {
        holdCurrent.textContent = '';
        showError(holdErrors, error, 'Could not load the legal hold');
      }
    },
  );

  holdForm.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    holdStatus.textContent = '';
    showError(holdErrors, null);
    busy(holdButton, true);
    try {
      const answer = await api.setLegalHold(orgId, !held, held ? '' : holdReason.value.trim());
      showHold(answer);
      loadRecords();
      holdReason.value = '';
      holdStatus.textContent = answer.legal_hold ? 'The legal hold is in place.' : 'The legal hold is lifted.';
    } catch (error) {
      showError(holdErrors, error, 'Could not change the legal hold');
    } finally {
      busy(holdButton, false);
    }
  });

  organizationPromise.then((organization) => {
    if (alive && organization && !nameInput.value) nameInput.value = organization.name;
  });

  function showRetention(days, inForce) {
    retentionCurrent.textContent = days
      ? `Events are kept for ${days} days.`
      : `No retention period is set: the server\u2019s default of ${inForce} days applies.`;
    retention.value = days ? String(days) : '';
    if (days && retention.value !== String(days)) {
      retention.append(h('option', { value: String(days), text: `${days} days` }));
      retention.value = String(days);
    }
  }

  Promise.all([api.getRetention(orgId), api.getAuditLogConfiguration(orgId)]).then(
    ([own, configuration]) => alive && showRetention(own.retention_period_in_days, configuration.retention_period_in_days),
    (error) => {
      if (alive) {
        retentionCurrent.textContent = '';
        showError(retentionErrors, error, 'Could not load the retention period');
      }
    },
  );

  renameForm.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    nameStatus.textContent = '';
    const name = nameInput.value.trim();
    if (!name) {
      showError(nameErrors, new Error('Enter a name.'));
      nameInput.focus();
      return;
    }
    showError(nameErrors, null);
    busy(saveName, true);
    try {
      const organization = await api.updateOrganization(orgId, { name });
      nameInput.value = organization.name;
      onRenamed(organization.name);
      nameStatus.textContent = `Renamed to \u201c${organization.name}\u201d.`;
    } catch (error) {
      showError(nameErrors, error, 'Could not rename');
    } finally {
      busy(saveName, false);
    }
  });

  retentionForm.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    retentionStatus.textContent = '';
    if (!retention.value) {
      showError(retentionErrors, new Error('Choose a retention period.'));
      retention.focus();
      return;
    }
    showError(retentionErrors, null);
    busy(saveRetention, true);
    try {
      const answer = await api.setRetention(orgId, Number(retention.value));
      showRetention(answer.retention_period_in_days);
      retentionStatus.textContent = `Saved: ${answer.retention_period_in_days} days.`;
    } catch (error) {
      showError(retentionErrors, error, 'Could not save the retention period');
    } finally {
      busy(saveRetention, false);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Schemas

/** The definition part of a schema version, as the API takes it back. */
function definitionOf(schema) {
  const definition = { targets: schema.targets ?? [] };
  if (schema.actor) definition.actor = schema.actor;
  if (schema.metadata !== undefined) definition.metadata = schema.metadata;
  return definition;
}

/** A line diff (longest common subsequence) of two texts: [{kind: ' '|'+'|'-', line}]. */
export function lineDiff(before, after) {
  const a = before.split('\n');
  const b = after.split('\n');
  const lengths = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      lengths[i][j] = a[i] === b[j] ? lengths[i + 1][j + 1] + 1 : Math.max(lengths[i + 1][j], lengths[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push({ kind: ' ', line: a[i] });
      i += 1;
      j += 1;
    } else if (lengths[i + 1][j] >= lengths[i][j + 1]) {
      out.push({ kind: '-', line: a[i] });
      i += 1;
    } else {
      out.push({ kind: '+', line: b[j] });
      j += 1;
    }
  }
  while (i < a.length) out.push({ kind: '-', line: a[i++] });
  while (j < b.length) out.push({ kind: '+', line: b[j++] });
  return out;
}

function diffView(before, after) {
  const lines = lineDiff(before, after);
  return h(
    'pre',
    { class: 'diff', tabindex: '0' },
    lines.map(({ kind, line }) =>
      h('span', { class: kind === '+' ? 'diff-add' : kind === '-' ? 'diff-del' : 'diff-same', text: `${kind} ${line}\n` }),
    ),
  );
}

/**
 * Opens the "Create an event" form. With `latest` (a schema version), it edits that action:
 * the form is pre-filled and saving creates the next version.
 */
function openSchemaDialog({ action = '', latest = null, onSaved }) {
  const titleId = uniqueId('schema-dialog');
  const actionInput = h('input', { type: 'text', name: 'action', autocomplete: 'off', spellcheck: 'false', required: true, readOnly: Boolean(latest), value: action });
  const targetsInput = h('input', {
    type: 'text',
    name: 'targets',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    value: latest ? (latest.targets ?? []).map((target) => target.type).join(', ') : '',
  });
  const metadataInput = h('textarea', { name: 'metadata', rows: '6', spellcheck: 'false', class: 'code-input' });
  metadataInput.value = latest && latest.metadata !== undefined ? JSON.stringify(latest.metadata, null, 2) : '';
  const actorMetadataInput = h('textarea', { name: 'actor_metadata', rows: '4', spellcheck: 'false', class: 'code-input' });
  actorMetadataInput.value = latest && latest.actor && latest.actor.metadata !== undefined ? JSON.stringify(latest.actor.metadata, null, 2) : '';
  const errors = errorBox();
  const save = h('button', { type: 'submit', class: 'button primary', text: 'Save event' });
  const cancel = h('button', { type: 'button', class: 'button', text: 'Cancel' });
  const form = h(
    'form',
    { novalidate: true },
    h('h2', { id: titleId, text: latest ? `Edit schema of ${action}` : 'Create an event' }),
    h('p', {
      class: 'muted small',
      text: latest
        ? `Saving creates version ${latest.version + 1}, unless nothing changed. Events without a version are checked against the latest.`
        : 'Defines an action and the target types its events may name. Saving creates version 1, or the next version when the action exists.',
    }),
    field('Action', actionInput, latest ? null : 'For example user.signed_in'),
    field('Targets', targetsInput, 'Comma-separated target types, for example team, invoice'),
    field('Metadata JSON Schema', metadataInput, 'Optional. A JSON Schema of the event\u2019s metadata object.'),
    field('Actor metadata JSON Schema', actorMetadataInput, 'Optional. A JSON Schema of the actor\u2019s metadata object.'),
    errors,
    h('div', { class: 'form-actions' }, save, cancel),
  );
  const dialog = h('dialog', { class: 'dialog wide', 'aria-labelledby': titleId }, form);
  const close = () => {
    dialog.close();
  };
  dialog.addEventListener('close', () => dialog.remove());
  cancel.addEventListener('click', close);

  function parseSchemaField(input, label) {
    const text = input.value.trim();
    input.removeAttribute('aria-invalid');
    if (!text) return undefined;
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      input.setAttribute('aria-invalid', 'true');
      throw new Error(`${label} is not valid JSON: ${error.message}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      input.setAttribute('aria-invalid', 'true');
      throw new Error(`${label} must be a JSON object (a JSON Schema such as {"type": "object"}).`);
    }
    return value;
  }

  // Editing a field that was refused clears the complaint.
  form.addEventListener('input', (input) => {
    if (input.target.getAttribute('aria-invalid') === 'true') {
      input.target.removeAttribute('aria-invalid');
      showError(errors, null);
    }
  });

  form.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    showError(errors, null);
    let definition;
    const name = actionInput.value.trim();
    try {
      if (!name) {
        actionInput.focus();
        throw new Error('Enter the action, for example user.signed_in.');
      }
      const types = [...new Set(splitList(targetsInput.value))];
      if (!types.length) {
        targetsInput.focus();
        throw new Error('Enter at least one target type.');
      }
      const metadata = parseSchemaField(metadataInput, 'Metadata JSON Schema');
      const actorMetadata = parseSchemaField(actorMetadataInput, 'Actor metadata JSON Schema');
      // Target metadata schemas are not edited here: a target type that stays keeps its own.
      const previousTargets = new Map(((latest && latest.targets) || []).map((target) => [target.type, target]));
      definition = {
        targets: types.map((type) => (previousTargets.get(type) ? { ...previousTargets.get(type) } : { type })),
      };
      if (metadata !== undefined) definition.metadata = metadata;
      if (actorMetadata !== undefined) definition.actor = { metadata: actorMetadata };
    } catch (error) {
      showError(errors, error);
      const invalid = form.querySelector('[aria-invalid="true"]');
      if (invalid) invalid.focus();
      return;
    }
    busy(save, true);
    try {
      const { created, schema } = await api.createSchema(name, definition);
      close();
      if (created) announce(`Saved version ${schema.version} of ${name}.`, 'sticky');
      else announce(`No change: identical to version ${schema.version}.`, 'sticky');
      if (onSaved) onSaved(name, schema, created);
    } catch (error) {
      showError(errors, error, 'Could not save');
    } finally {
      busy(save, false);
    }
  });

  document.body.append(dialog);
  dialog.showModal();
  (latest ? targetsInput : actionInput).focus();
  return dialog;
}

function renderSchemas() {
  document.title = 'Schemas · Vellum';
  const state = { cursor: null, answer: null };
  let sequence = 0;
  const createButton = h('button', { type: 'button', class: 'button primary', text: 'Create an event' });
  createButton.addEventListener('click', () =>
    openSchemaDialog({
      onSaved: (action) => navigate(schemaHref(action)),
    }),
  );
  const errors = errorBox();
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data-table' },
    h('caption', { class: 'visually-hidden', text: 'Actions and their latest schema version' }),
    h('thead', {}, h('tr', {}, ['Action', 'Latest version', 'Target types', 'Updated'].map((name) => h('th', { scope: 'col', text: name })))),
    tbody,
  );
  const wrap = tableWrap('Schemas', table);
  const empty = h('div', { class: 'empty-state', hidden: true }, h('p', { text: 'No actions yet. Use \u201cCreate an event\u201d to define the first one, or POST /audit_logs/actions/{action}/schemas.' }));
  const pages = cursorPager('Schema pages', state, load);

  async function load() {
    const mine = ++sequence;
    try {
      const answer = await api.listActions({ limit: 50, ...(state.cursor ?? {}) });
      if (mine !== sequence) return;
      state.answer = answer;
      showError(errors, null);
      const actions = answer.data ?? [];
      tbody.replaceChildren(
        ...actions.map((action) =>
          h(
            'tr',
            {},
            h('td', {}, h('a', { href: schemaHref(action.name) }, h('code', { text: action.name }))),
            h('td', { text: `v${action.schema ? action.schema.version : '?'}` }),
            h('td', { text: ((action.schema && action.schema.targets) || []).map((target) => target.type).join(', ') }),
            h('td', { class: 'nowrap' }, timeElement(action.updated_at)),
          ),
        ),
      );
      wrap.hidden = actions.length === 0;
      empty.hidden = actions.length !== 0;
      pages.update(answer.list_metadata);
    } catch (error) {
      if (mine === sequence) showError(errors, error, 'Could not load the actions');
    }
  }

  setMain(
    h('div', { class: 'page-header' }, pageHeading('Event schemas'), createButton),
    h('p', { class: 'muted', text: 'Each action has immutable, numbered schema versions: the target types its events may name and optional JSON Schemas of their metadata.' }),
    errors,
    wrap,
    empty,
    pages.node,
  );
  load();
}

function renderSchema({ action }) {
  document.title = `${action} · Schemas · Vellum`;
  let alive = true;
  onLeave(() => {
    alive = false;
  });
  const editButton = h('button', { type: 'button', class: 'button primary', text: 'Edit schema', disabled: true });
  const errors = errorBox();
  const versionsList = h('div', { class: 'versions' });
  const more = h('button', { type: 'button', class: 'button', text: 'Show older versions', hidden: true });
  let versions = [];
  let after = null;

  editButton.addEventListener('click', () => {
    if (!versions.length) return;
    openSchemaDialog({
      action,
      latest: versions[0],
      onSaved: () => renderSchemaAgain(),
    });
  });

  function renderSchemaAgain() {
    if (!alive) return;
    leavePage();
    current = { route: { name: 'schema', action } };
    renderSchema({ action });
    // The message about the save belongs to this page: the next page clears it.
    statusRegion.dataset.kind = '';
  }

  function renderVersions() {
    versionsList.replaceChildren(
      ...versions.map((version, index) => {
        const text = JSON.stringify(definitionOf(version), null, 2);
        const older = versions[index + 1];
        const headingId = uniqueId('version');
        return h(
          'article',
          { class: 'card version', 'aria-labelledby': headingId, dataset: { version: String(version.version) } },
          h(
            'div',
            { class: 'section-header' },
            h('h2', { id: headingId, text: `Version ${version.version}${index === 0 ? ' (latest)' : ''}` }),
            h('span', { class: 'muted small' }, 'created ', timeElement(version.created_at)),
          ),
          h('div', { class: 'version-body' },
            h('div', {}, h('h3', { text: 'Definition' }), h('pre', { class: 'json', tabindex: '0' }, h('code', { text }))),
            older
              ? h('div', {}, h('h3', { text: `Changes from version ${older.version}` }), diffView(JSON.stringify(definitionOf(older), null, 2), text))
              : version.version === 1
                ? h('div', {}, h('h3', { text: 'Changes' }), h('p', { class: 'muted', text: 'First version.' }))
                : null,
          ),
        );
      }),
    );
  }

  async function load() {
    try {
      const answer = await api.listSchemas(action, { limit: 100, ...(after ? { after } : {}) });
      if (!alive) return;
      versions = versions.concat(answer.data ?? []);
      after = answer.list_metadata ? answer.list_metadata.after : null;
      more.hidden = !after;
      editButton.disabled = versions.length === 0;
      if (!versions.length) {
        versionsList.replaceChildren(h('div', { class: 'empty-state' }, h('p', { text: 'This action has no schema yet.' })));
      } else {
        renderVersions();
      }
    } catch (error) {
      if (alive) showError(errors, error, 'Could not load the versions');
    }
  }
  more.addEventListener('click', load);

  setMain(
    h('p', { class: 'breadcrumbs' }, h('a', { href: '#/schemas', text: 'Schemas' }), ' / '),
    h('div', { class: 'page-header' }, pageHeading(h('code', { text: action })), editButton),
    errors,
    versionsList,
    more,
  );
  load();
}

// ---------------------------------------------------------------------------------------------
// API keys

function renderApiKeys() {
  document.title = 'API keys · Vellum';
  let alive = true;
  onLeave(() => {
    alive = false;
  });
  const nameInput = h('input', { type: 'text', name: 'name', autocomplete: 'off', required: true, maxlength: '100' });
  const createButton = h('button', { type: 'submit', class: 'button primary', text: 'Create API key' });
  const createErrors = errorBox();
  const createForm = h('form', { class: 'inline-form', novalidate: true }, field('Name', nameInput, 'To tell the key apart, e.g. "billing service"'), createButton);
  const secretPanel = h('div', { class: 'secret-panel-slot' });
  const listErrors = errorBox();
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data-table' },
    h('caption', { class: 'visually-hidden', text: 'API keys, newest first' }),
    h('thead', {}, h('tr', {}, ['Name', 'Secret', 'Status', 'Created', 'Revoked', ''].map((name) => h('th', { scope: 'col', text: name })))),
    tbody,
  );
  const wrap = tableWrap('API keys', table);
  const empty = h('div', { class: 'empty-state', hidden: true }, h('p', { text: 'No API keys yet. Create one to send events.' }));

  function showSecret(key) {
    const secret = h('input', { type: 'text', readOnly: true, class: 'code-input secret', value: key.secret, spellcheck: 'false', autocomplete: 'off' });
    const copyStatus = h('span', { class: 'muted small', role: 'status' });
    const copyButton = h('button', { type: 'button', class: 'button primary', text: 'Copy secret' });
    copyButton.addEventListener('click', () => copyText(key.secret, copyStatus));
    const done = h('button', { type: 'button', class: 'button', text: 'Done' });
    const panel = h(
      'section',
      { class: 'card secret-panel', 'aria-labelledby': 'secret-heading' },
      h('h2', { id: 'secret-heading', text: `New API key \u201c${key.name}\u201d` }),
      h('p', { class: 'warning', role: 'alert', text: 'Copy this secret now. It will not be shown again.' }),
      field('Secret', secret),
      h('div', { class: 'form-actions' }, copyButton, done, copyStatus),
    );
    done.addEventListener('click', () => {
      panel.remove();
      nameInput.focus();
    });
    secretPanel.replaceChildren(panel);
    secret.focus();
    secret.select();
  }

  async function load() {
    try {
      const answer = await api.listApiKeys();
      if (!alive) return;
      showError(listErrors, null);
      const keys = answer.data ?? [];
      tbody.replaceChildren(
        ...keys.map((key) => {
          const revoke =
            key.status === 'active'
              ? h('button', { type: 'button', class: 'button small danger', text: 'Revoke', 'aria-label': `Revoke ${key.name}` })
              : null;
          if (revoke) {
            revoke.addEventListener('click', async () => {
              const confirmed = await confirmDialog({
                title: `Revoke API key \u201c${key.name}\u201d?`,
                message: 'Applications that use it are refused from their next request. This cannot be undone.',
                confirmLabel: 'Revoke key',
                danger: true,
              });
              if (!confirmed) return;
              busy(revoke, true);
              try {
                await api.revokeApiKey(key.id);
                announce(`Revoked API key \u201c${key.name}\u201d.`);
                await load();
              } catch (error) {
                showError(listErrors, error, 'Could not revoke the key');
                busy(revoke, false);
              }
            });
          }
          return h(
            'tr',
            { dataset: { keyId: key.id } },
            h('td', { text: key.name }),
            h('td', {}, h('code', { text: key.redacted_secret })),
            h('td', {}, h('span', { class: ['badge', key.status === 'active' ? 'ok' : 'muted-badge'], text: key.status })),
            h('td', { class: 'nowrap' }, timeElement(key.created_at)),
            h('td', { class: 'nowrap' }, key.revoked_at ? timeElement(key.revoked_at) : ''),
            h('td', {}, revoke),
          );
        }),
      );
      wrap.hidden = keys.length === 0;
      empty.hidden = keys.length !== 0;
    } catch (error) {
      if (alive) showError(listErrors, error, 'Could not load the API keys');
    }
  }

  createForm.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    const name = nameInput.value.trim();
    if (!name) {
      showError(createErrors, new Error('Enter a name for the key.'));
      nameInput.focus();
      return;
    }
    showError(createErrors, null);
    busy(createButton, true);
    try {
      const key = await api.createApiKey(name);
      nameInput.value = '';
      showSecret(key);
      await load();
    } catch (error) {
      showError(createErrors, error, 'Could not create the key');
    } finally {
      busy(createButton, false);
    }
  });

  setMain(
    pageHeading('API keys'),
    h('p', { class: 'muted', text: 'Secret keys for the public API (Authorization: Bearer sk_\u2026). Only a hash of each is stored.' }),
    h('section', { class: 'card', 'aria-labelledby': 'create-key-heading' }, h('h2', { id: 'create-key-heading', text: 'Create an API key' }), createForm, createErrors),
    secretPanel,
    listErrors,
    wrap,
    empty,
  );
  load();
}

// ---------------------------------------------------------------------------------------------
// Health

function renderHealth() {
  document.title = 'Health · Vellum';
  let alive = true;
  onLeave(() => {
    alive = false;
  });
  const errors = errorBox();
  const summary = h('div', { class: 'stats' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data-table health-table' },
    h('caption', { class: 'visually-hidden', text: 'Event logs per organization' }),
    h('thead', {}, h('tr', {}, ['Organization', 'Events', 'Latest signed checkpoint'].map((name) => h('th', { scope: 'col', text: name })))),
    tbody,
  );
  const wrap = tableWrap('Logs per organization', table);
  const note = h('p', { class: 'muted small', hidden: true, text: 'Only the 100 most recent logs are listed.' });
  const empty = h('div', { class: 'empty-state', hidden: true }, h('p', { text: 'No organization has events yet.' }));
  const refresh = h('button', { type: 'button', class: 'button', text: 'Refresh' });

  function checkpointCell(organization) {
    if (!organization.checkpoint) return h('span', { class: 'muted', text: 'none signed yet' });
    const sizeLine = organization.checkpoint.split('\n')[1];
    const size = /^[0-9]+$/.test(sizeLine ?? '') ? Number(sizeLine) : null;
    const behind = size !== null && organization.events > size ? organization.events - size : 0;
    return [
      h('pre', { class: 'checkpoint', tabindex: '0', 'aria-label': `Signed checkpoint of ${organization.id}`, text: organization.checkpoint }),
      behind
        ? h('p', { class: 'muted small', text: `${behind} newer event${behind === 1 ? '' : 's'}: a checkpoint covering them is signed when one is next requested.` })
        : null,
    ];
  }

  function stat(label, ...value) {
    return h('div', { class: 'stat card' }, h('p', { class: 'stat-label', text: label }), h('p', { class: 'stat-value' }, ...value));
  }

  async function load() {
    busy(refresh, true);
    try {
      const health = await api.health();
      if (!alive) return;
      showError(errors, null);
      const ok = health.store && health.store.status === 'ok';
      summary.replaceChildren(
        stat('Store', h('span', { class: ['badge', ok ? 'ok' : 'not-verified'], text: ok ? 'ok' : (health.store && health.store.status) || 'unknown' }), !ok && health.store && health.store.message ? h('span', { class: 'small block', text: health.store.message }) : null),
        stat('Total events', String(health.total_events ?? 0)),
        stat('Version', String(health.version ?? '')),
      );
      const organizations = health.organizations ?? [];
      tbody.replaceChildren(
        ...organizations.map((organization) =>
          h(
            'tr',
            {},
            h(
              'td',
              {},
              organization.deleted || !organization.name
                ? h('span', { text: organization.name ?? 'Deleted organization' })
                : h('a', { href: orgHref(organization.id), text: organization.name }),
              organization.deleted ? h('span', { class: 'badge muted-badge', text: 'deleted' }) : null,
              h('code', { class: 'small block muted', text: organization.id }),
            ),
            h('td', { class: 'number', text: String(organization.events) }),
            h('td', {}, checkpointCell(organization)),
          ),
        ),
      );
      wrap.hidden = organizations.length === 0;
      empty.hidden = organizations.length !== 0;
      note.hidden = !health.organizations_truncated;
    } catch (error) {
      if (alive) showError(errors, error, 'Could not load the health summary');
    } finally {
      busy(refresh, false);
    }
  }
  refresh.addEventListener('click', load);

  setMain(
    h('div', { class: 'page-header' }, pageHeading('Health'), refresh),
    errors,
    summary,
    h('h2', { text: 'Logs' }),
    wrap,
    empty,
    note,
  );
  load();
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  try {
    session = await api.getSession();
    api.setCsrfToken(session.csrf_token);
    showApp();
    route();
  } catch (error) {
    if (error.status === 401) {
      if (!main.querySelector('.sign-in-form')) showSignIn();
    } else {
      setMain(
        pageHeading('Vellum dashboard'),
        h('div', { class: 'error-box', role: 'alert' }, h('p', { text: `Could not reach the server: ${error.message}` })),
        h('button', { type: 'button', class: 'button', text: 'Retry', on: { click: start } }),
      );
    }
  }
}

start();
