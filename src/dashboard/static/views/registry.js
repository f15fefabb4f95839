// Every view of the dashboard, in page order. A new view is one module in views/ plus one line
// here (docs/dashboard.md, "Adding a view").

import { statsView } from './stats.js';
import { tasksView } from './tasks.js';
import { taskPanelView } from './task-panel.js';
import { taskGraphView } from './task-graph.js';
import { attemptsView } from './attempts.js';
import { nodesView, nodesWarningView } from './nodes.js';
import { actionsView } from './actions.js';
import { schedulesView } from './schedules.js';
import { auditView } from './audit.js';

/** @type {import('../lib/types.js').View[]} */
export const VIEWS = [
  statsView,
  tasksView,
  taskPanelView,
  taskGraphView,
  attemptsView,
  actionsView,
  schedulesView,
  auditView,
  nodesView,
  nodesWarningView,
];
