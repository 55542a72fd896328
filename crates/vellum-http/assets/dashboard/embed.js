// The embeddable audit log viewer. A customer's page includes
//
//   <script src="https://vellum.example.com/embed/viewer.js"></script>
//   <vellum-audit-log token="vt_…"></vellum-audit-log>
//
// and the element shows that organization's trail with the events viewer of the dashboard and
// the Admin Portal (filters, paging, detail, in-browser verification), in its own shadow root so
// that the page's styles and its own do not mix. The token (from POST /audit_logs/viewer_tokens,
// made by the application's server) is the only credential: no cookie is sent, and the server
// answers only pages of the origins its operator allowed. Setting a new `token` attribute (the
// old one expired) renders the viewer again. On failure the element fires `vellum-error`.
//
// A classic script, so that it works from a plain <script> tag; the viewer's modules are loaded
// from the same server with import().

(() => {
  const script = document.currentScript;
  if (!script || !script.src) return;
  const origin = new URL(script.src).origin;
  const modules = `${origin}/embed/modules/`;

  class VellumAuditLog extends HTMLElement {
    static get observedAttributes() {
      return ['token'];
    }

    connectedCallback() {
      this.render();
    }

    attributeChangedCallback() {
      if (this.isConnected) this.render();
    }

    disconnectedCallback() {
      this.stop();
    }

    stop() {
      if (this.viewer) this.viewer.destroy();
      this.viewer = null;
    }

    fail(container, error) {
      container.replaceChildren();
      const box = document.createElement('div');
      box.className = 'error-box';
      box.setAttribute('role', 'alert');
      box.textContent = `The audit log cannot be shown: ${error.message}`;
      container.append(box);
      this.dispatchEvent(new CustomEvent('vellum-error', { detail: { status: error.status, code: error.code, message: error.message } }));
    }

    async render() {
      this.stop();
      const generation = (this.generation = (this.generation ?? 0) + 1);
      const root = this.shadowRoot ?? this.attachShadow({ mode: 'open' });
      const style = document.createElement('link');
      style.rel = 'stylesheet';
      style.href = `${modules}dashboard.css`;
      const container = document.createElement('div');
      container.className = 'vellum-embed';
      root.replaceChildren(style, container);
      const token = (this.getAttribute('token') ?? '').trim();
      if (!token) {
        this.fail(container, new Error('no viewer token was given'));
        return;
      }
      try {
        const [{ createApi }, { mountEventsViewer }] = await Promise.all([
          import(`${modules}api.js`),
          import(`${modules}viewer.js`),
        ]);
        const api = createApi({
          basePath: `${origin}/viewer/api`,
          headers: () => ({ Authorization: `Bearer ${token}` }),
          csrf: false,
          credentials: 'omit',
        });
        const about = await api.get('/token');
        if (generation !== this.generation) return;
        this.viewer = mountEventsViewer(container, {
          // The application's action names are not this organization's to list.
          api: { ...api, listActions: undefined },
          organizationId: about.organization_id,
          emptyText: 'No events yet.',
          onOpenEvent: (event) => this.viewer && this.viewer.showEvent(event.id),
          onBack: () => this.viewer && this.viewer.showList(),
        });
      } catch (error) {
        if (generation === this.generation) this.fail(container, error);
      }
    }
  }

  if (!customElements.get('vellum-audit-log')) customElements.define('vellum-audit-log', VellumAuditLog);
})();
