// booking.js — the public booking page of one business, served at `/b/{subdomain}/`.
//
// No sign-in: it looks the business up by the subdomain in the address
// (`GET /api/public/businesses/{subdomain}/`), shows a form, creates the reservation
// (`POST /api/businesses/{id}/reservations/`) and shows the confirmation. The owner's
// dashboard receives it live.

import { createApi } from './api.js';
import { h, replace, formatDateTime } from './dom.js';
import { field, formError, onSubmit } from './views/forms.js';

const api = createApi();
const main = document.getElementById('main');

/** The subdomain in `/b/{subdomain}/`, or null. */
export function subdomainFromPath(pathname) {
  const m = /^\/b\/([a-z0-9-]{1,63})\/?$/.exec(pathname);
  return m ? m[1] : null;
}

/** `datetime-local` value (the visitor's local time) → RFC 3339 UTC with a `Z`, whole seconds. */
export function toUtc(localValue) {
  const d = new Date(localValue);
  if (Number.isNaN(d.getTime())) return localValue;
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A `datetime-local` value for `date` in local time, to the minute. */
function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

async function start() {
  const subdomain = subdomainFromPath(location.pathname);
  if (!subdomain) {
    showMessage('Not found', 'This booking address is not valid.');
    return;
  }
  let business;
  try {
    business = await api.publicBusiness(subdomain);
  } catch (err) {
    if (err.status === 404) showMessage('Not found', 'No business takes bookings at this address.');
    else showMessage('Unavailable', `Bookings cannot be taken right now: ${err.message}`, true);
    return;
  }
  showForm(business);
}

function showMessage(title, text, retry = false) {
  document.title = title;
  replace(main, h('section', { class: 'card' },
    h('h1', {}, title),
    h('p', { role: 'alert' }, text),
    retry ? h('button', { type: 'button', class: 'btn', onclick: start }, 'Try again') : null));
}

function showForm(business) {
  document.title = `Book · ${business.name}`;
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const soon = new Date(Date.now() + 60 * 60 * 1000);
  soon.setMinutes(0, 0, 0);
  const form = h('form', { class: 'card form', id: 'booking-form', novalidate: true, 'aria-labelledby': 'booking-title' },
    h('h1', { id: 'booking-title' }, business.name),
    h('p', { class: 'muted' }, 'Book an appointment. You will get a confirmation by email.'),
    field({ name: 'customer_name', label: 'Your name', required: true, maxlength: 200, autocomplete: 'name' }),
    field({ name: 'customer_email', label: 'Your email', type: 'email', required: true, autocomplete: 'email' }),
    field({ name: 'starts_at', label: 'Date and time', type: 'datetime-local', required: true, value: localInputValue(soon), min: localInputValue(new Date()), hint: `In your time zone (${tz}).` }),
    field({ name: 'service', label: 'Service', required: true, maxlength: 200, list: 'services', hint: 'For example: Haircut.' }),
    h('datalist', { id: 'services' }, ['Haircut', 'Beard trim', 'Colour', 'Shave'].map((s) => h('option', { value: s }))),
    formError(),
    h('button', { type: 'submit', class: 'btn btn-primary' }, 'Book'),
  );
  onSubmit(form, async (values) => {
    try {
      const reservation = await api.book(business.id, { ...values, starts_at: values.starts_at ? toUtc(values.starts_at) : '' });
      showConfirmation(business, reservation);
    } catch (err) {
      if (err.status === 429) {
        err.fields = {};
        err.message = `Too many bookings from your network. Please try again${err.retryAfter ? ` in ${err.retryAfter} s` : ' shortly'}.`;
      }
      throw err;
    }
  });
  replace(main, form);
  form.querySelector('input').focus();
}

function showConfirmation(business, r) {
  document.title = `Booked · ${business.name}`;
  const again = h('button', { type: 'button', class: 'btn', onclick: () => showForm(business) }, 'Book another');
  const row = (term, value) => [h('dt', {}, term), h('dd', {}, value)];
  const section = h('section', { class: 'card confirmation', id: 'confirmation', 'aria-labelledby': 'confirm-title', tabindex: '-1' },
    h('h1', { id: 'confirm-title' }, 'You are booked'),
    h('p', { role: 'status' }, `${business.name} has your reservation. A confirmation is on its way to ${r.customer_email}.`),
    h('dl', { class: 'details' },
      row('Name', r.customer_name),
      row('When', formatDateTime(r.starts_at)),
      row('Service', r.service),
      row('Reference', r.id),
    ),
    again,
  );
  replace(main, section);
  section.focus();
}

start();
