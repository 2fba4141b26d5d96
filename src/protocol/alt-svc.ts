/**
 * The Alt-Svc header field (RFC 7838 §3), parsed. Pure: the client decides what to do with it.
 *
 *   Alt-Svc: h3=":443"; ma=86400; persist=1, h2="alt.example.com:8443"
 *   Alt-Svc: clear
 *
 * A malformed alternative is dropped and the others are kept (§3: a client "MUST ignore"
 * alternatives it does not understand); a malformed field yields no alternatives at all.
 */

export interface AltService {
  /** The ALPN protocol id, percent-decoded (§3: `protocol-id` is percent-encoded). */
  protocol: string;
  /** The alternative host; '' means the origin's own host. */
  host: string;
  port: number;
  /** Freshness in seconds (`ma`, default 24 hours). */
  maxAgeSeconds: number;
  /** `persist=1`: keep across network changes. */
  persist: boolean;
}

export type AltSvcField = { clear: true } | { clear: false; alternatives: AltService[] };

const DEFAULT_MAX_AGE_SECONDS = 86_400;
/** Header values beyond this are not parsed at all: nobody needs hundreds of alternatives. */
const MAX_FIELD_LENGTH = 8 * 1024;
const MAX_ALTERNATIVES = 16;

/** RFC 9110 §5.6.2 tchar. */
function isTchar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x21 && c <= 0x7e && "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)))
  );
}

/** A small cursor over the field value. */
class Cursor {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  skipOws(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  token(): string | undefined {
    const start = this.pos;
    while (!this.done && isTchar(this.text.charCodeAt(this.pos))) this.pos++;
    return this.pos > start ? this.text.slice(start, this.pos) : undefined;
  }

  /** RFC 9110 §5.6.4 quoted-string, with quoted-pairs unescaped. */
  quoted(): string | undefined {
    if (this.peek() !== '"') return undefined;
    this.pos++;
    let out = '';
    while (!this.done) {
      const c = this.text[this.pos++] as string;
      if (c === '"') return out;
      if (c === '\\') {
        if (this.done) return undefined;
        out += this.text[this.pos++];
      } else {
        out += c;
      }
    }
    return undefined;
  }

  /** Moves past the next top-level comma (or to the end): recovery after a bad alternative. */
  skipToComma(): void {
    while (!this.done) {
      const c = this.peek();
      if (c === '"') {
        if (this.quoted() === undefined) this.pos = this.text.length;
        continue;
      }
      this.pos++;
      if (c === ',') return;
    }
  }
}

function parseAuthority(value: string): { host: string; port: number } | undefined {
  // alt-authority = [ uri-host ] ":" port; an IPv6 host comes in brackets.
  const colon = value.lastIndexOf(':');
  if (colon < 0) return undefined;
  let host = value.slice(0, colon);
  const portText = value.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65_535) return undefined;
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return undefined;
    host = host.slice(1, -1);
  }
  if (/[\s/?#@]/.test(host)) return undefined;
  return { host: host.toLowerCase(), port };
}

function decodeProtocolId(id: string): string | undefined {
  try {
    return decodeURIComponent(id);
  } catch {
    return undefined;
  }
}

/** One `alternative *( OWS ";" OWS parameter )`; undefined when it is malformed. */
function parseAlternative(cursor: Cursor): AltService | undefined {
  const id = cursor.token();
  if (id === undefined || cursor.peek() !== '=') return undefined;
  cursor.pos++;
  const authorityText = cursor.quoted();
  const protocol = decodeProtocolId(id);
  if (authorityText === undefined || protocol === undefined) return undefined;
  const authority = parseAuthority(authorityText);
  if (authority === undefined) return undefined;
  const alt: AltService = { protocol, ...authority, maxAgeSeconds: DEFAULT_MAX_AGE_SECONDS, persist: false };
  for (;;) {
    cursor.skipOws();
    if (cursor.peek() !== ';') break;
    cursor.pos++;
    cursor.skipOws();
    const name = cursor.token();
    if (name === undefined || cursor.peek() !== '=') return undefined;
    cursor.pos++;
    const value = cursor.peek() === '"' ? cursor.quoted() : cursor.token();
    if (value === undefined) return undefined;
    const lower = name.toLowerCase();
    if (lower === 'ma') {
      // §3.1 delta-seconds; a bad value makes the parameter, not the alternative, unusable.
      if (/^\d+$/.test(value)) alt.maxAgeSeconds = Math.min(Number(value), 2 ** 31);
    } else if (lower === 'persist') {
      // §3.1: "persist=1"; other values are ignored.
      alt.persist = value === '1';
    }
    // Unknown parameters are ignored (§3).
  }
  return alt;
}

/**
 * Parses one or more Alt-Svc field values (repeated fields are joined with commas). Returns
 * undefined when there is nothing usable.
 */
export function parseAltSvc(value: string | readonly string[] | undefined): AltSvcField | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : value.join(', ');
  if (text.length > MAX_FIELD_LENGTH) return undefined;
  if (text.trim() === 'clear') return { clear: true };
  const cursor = new Cursor(text);
  const alternatives: AltService[] = [];
  // Bounded by the field's length: every turn consumes at least one character.
  while (!cursor.done && alternatives.length < MAX_ALTERNATIVES) {
    cursor.skipOws();
    if (cursor.peek() === ',') {
      cursor.pos++;
      continue;
    }
    const start = cursor.pos;
    const alt = parseAlternative(cursor);
    cursor.skipOws();
    if (alt !== undefined && (cursor.done || cursor.peek() === ',')) {
      alternatives.push(alt);
      if (!cursor.done) cursor.pos++;
    } else {
      if (cursor.pos === start) cursor.pos++;
      cursor.skipToComma();
    }
  }
  return alternatives.length === 0 ? undefined : { clear: false, alternatives };
}
