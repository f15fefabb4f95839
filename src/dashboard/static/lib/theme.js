// Light or dark: follows the system (prefers-color-scheme) unless the user picks one, which this
// browser remembers (localStorage). The CSS does the rest with light-dark() on `color-scheme`
// (style.css), so the system case needs no script and the chart's colours follow too.

import { $select } from './dom.js';

const THEME_KEY = 'taskq.theme';
const THEMES = ['system', 'light', 'dark'];

/** @param {string} theme */
function apply(theme) {
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

export function setUpTheme() {
  const select = $select('theme');
  const saved = localStorage.getItem(THEME_KEY) ?? 'system';
  select.value = THEMES.includes(saved) ? saved : 'system';
  apply(select.value);
  select.addEventListener('change', () => {
    localStorage.setItem(THEME_KEY, select.value);
    apply(select.value);
  });
}
