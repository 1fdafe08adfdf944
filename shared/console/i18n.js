// The console's words in English and Japanese, chosen from the browser's language unless
// the person picked one (kept in localStorage), and times in the browser's time zone.

const WORDS = {
  en: {
    'nav.schedules': 'Schedules',
    'schedules.title': 'Scheduled tasks', 'schedules.intro': 'The tasks the schedule runs, their last run and next start. Run now asks the scheduler, which takes the run within a minute; a paused task\'s schedule records a paused run and does nothing.',
    'schedules.task': 'Task', 'schedules.cadence': 'Cadence', 'schedules.state': 'State', 'schedules.lastRun': 'Last run',
    'schedules.nextDue': 'Next start', 'schedules.unscheduled': 'not scheduled', 'schedules.everyMinutes': 'every {0} min',
    'schedules.everyHours': 'every {0} h', 'schedules.everySeconds': 'every {0} s', 'schedules.paused': 'paused',
    'schedules.pausedBy': 'by {0} since {1}', 'schedules.active': 'on schedule', 'schedules.onRequest': 'on request only', 'schedules.dryRun': 'dry run',
    'schedules.runNow': 'Run now', 'schedules.dryRunNow': 'Dry run', 'schedules.pause': 'Pause', 'schedules.resume': 'Resume',
    'schedules.reason': 'Reason for a pause (optional)', 'schedules.requested': 'Asked for a run of {0}; the scheduler takes it within a minute.',
    'schedules.requestedDry': 'Asked for a dry run of {0}: it says what it would do and changes nothing.',
    'schedules.pausedNow': '{0} is paused.', 'schedules.resumed': '{0} runs on its schedule again.',
    'schedules.requestedAt': 'Requested', 'schedules.report': 'Report', 'schedules.noRuns': 'No runs yet.', 'schedules.neverRan': 'not yet',
    'schedules.back': '← Scheduled tasks', 'schedules.runsOf': 'Runs of {0}',
    'task.room-check': 'room check', 'task.rooms-sync': 'rooms sync', 'task.messages-sync': 'fixed messages sync',
    'task.sweep': 'sweep', 'task.retention': 'retention', 'task.migrate': 'migrate',
    'run.requested': 'requested', 'run.running': 'running', 'run.completed': 'completed', 'run.failed': 'failed',
    'run.paused': 'paused', 'run.skipped_overlap': 'skipped (overlap)',
    'nav.sync': 'Sync', 'nav.status': 'Status', 'nav.rooms': 'Rooms', 'nav.companies': 'Companies', 'nav.jobs': 'Jobs',
    'nav.connections': 'Connections',
    'connections.title': 'Chatwork connections', 'connections.intro': 'cwsync reads Chatwork through these accounts: each sees its own rooms and has its own rate limit. Tokens are kept encrypted and never shown.',
    'connections.oauth': 'Connect with Chatwork', 'connections.oauthOff': 'Connect with Chatwork is not set up here (no OAuth client).',
    'connections.token': 'Or add an API token', 'connections.add': 'Add',
    'connections.connected': 'Connected {0}; its rooms are being read.', 'connections.reconnected': 'Reconnected {0}.',
    'connections.changed': 'Saved.', 'connections.none': 'No connections yet.',
    'connections.bootstrap': 'CHATWORK_API_TOKEN (setting)', 'connections.account': 'Account', 'connections.kindHead': 'Kind',
    'connections.kind.oauth': 'OAuth', 'connections.kind.api_token': 'API token',
    'connections.status.active': 'active', 'connections.status.reauth_required': 'reconnect needed',
    'connections.status.revoked': 'revoked', 'connections.status.disabled': 'disabled',
    'connections.reauthWho': '{0} (or another admin) must connect this account again.',
    'connections.rooms': 'Rooms', 'connections.listed': 'Room list read', 'connections.connectedBy': 'Connected',
    'connections.by': '{0}, {1}', 'connections.disable': 'Disable', 'connections.enable': 'Enable',
    'connections.reconnect': 'Reconnect', 'connections.delete': 'Delete',
    'connections.confirmDelete': 'Delete this connection and its tokens? Its rooms stay, and are no longer read through it.',
    'signout': 'Sign out', 'language': 'Language', 'skip': 'Skip to content',
    'signin.title': 'Sign in', 'signin.paste': 'Paste a token', 'signin.token': 'Token',
    'signin.use': 'Use this token', 'signin.oauth': 'Sign in with your organization',
    'signin.hint': 'The local runner prints a console address that signs you in, and `cwsync-local token` prints more tokens.',
    'signin.failed': 'Signing in failed: {0}', 'signin.expired': 'Your session ended; sign in again.',
    'who': '{0} ({1})',
    'role.admin': 'admin', 'role.writer': 'writer', 'role.reader': 'reader',
    'sync.title': 'Sync', 'sync.rooms': 'Sync the room list', 'sync.messages': 'Sync messages of active rooms',
    'sync.intro': 'A rooms sync reads Chatwork\'s room list; a messages sync stores the latest messages of every active room.',
    'sync.none': 'No job is running.', 'sync.adminOnly': 'Only admins start syncs.',
    'sync.recent': 'Recent syncs',
    'job.cancel': 'Cancel', 'job.retry': 'Retry the failed items', 'job.open': 'Open',
    'job.checking': 'Checking which rooms changed; they join this job.',
    'job.ended': 'The {0} ended: {1}.', 'job.started': 'Started a {0}.', 'job.already': 'This {0} was already running.',
    'job.canceled': 'Canceled.', 'job.retried': 'Started a retry of {0} failed item(s).',
    'job.progress': '{0} of {1} {2}', 'job.success': 'succeeded {0}', 'job.failure': 'failed {0}',
    'job.type': 'Type', 'job.status': 'Status', 'job.created': 'Created', 'job.startedAt': 'Started',
    'job.finished': 'Finished', 'job.by': 'Started by', 'job.schedule': 'the schedule', 'job.items': 'Items',
    'job.payload': 'Payload', 'job.result': 'Result', 'job.error': 'Error', 'job.errors': 'Errors',
    'job.gaps': 'Gaps', 'job.rooms': 'Rooms', 'job.duration': 'Duration', 'job.room': 'Room',
    'job.unitRooms': 'rooms', 'job.unitItems': 'items', 'job.fetched': 'Fetched', 'job.missed': 'Missed (estimate)', 'job.message': 'Message',
    'jobs.title': 'Jobs', 'jobs.all': 'All', 'jobs.filter': 'Filter', 'jobs.startedBy': 'Started by',
    'jobs.anyone': 'Anyone', 'jobs.me': 'Me', 'jobs.none': 'No jobs.', 'jobs.detail': 'Job',
    'type.chatwork_rooms_sync': 'rooms sync', 'type.chatwork_messages_sync': 'messages sync',
    'type.summary_draft': 'summary draft',
    'status.queued': 'queued', 'status.processing': 'processing', 'status.completed': 'completed',
    'status.failed': 'failed', 'status.canceled': 'canceled', 'status.unchanged': 'unchanged',
    'rooms.title': 'Rooms', 'rooms.search': 'Search by name', 'rooms.active': 'Active',
    'rooms.linked': 'Linked', 'rooms.any': 'Any', 'rooms.yes': 'Yes', 'rooms.no': 'No',
    'rooms.name': 'Name', 'rooms.type': 'Type', 'rooms.companies': 'Companies', 'rooms.messages': 'Messages',
    'rooms.lastSync': 'Last sync', 'rooms.lastError': 'Last error', 'rooms.actions': 'Actions',
    'rooms.syncNow': 'Sync now', 'rooms.gap': 'gap ~{0}', 'rooms.left': 'left', 'rooms.never': 'never',
    'rooms.none': 'No rooms match.', 'rooms.activeToggle': 'Sync {0}', 'rooms.show': 'Open',
    'rooms.more': 'More', 'rooms.updated': '{0} is now {1}.', 'rooms.on': 'active', 'rooms.off': 'inactive',
    'room.none': 'No stored messages.', 'room.older': 'Older messages',
    'companies.title': 'Companies', 'companies.search': 'Search by name', 'companies.create': 'Create',
    'companies.name': 'Company name', 'companies.none': 'No companies.', 'companies.created': 'Created {0}.',
    'company.rooms': 'Linked rooms', 'company.link': 'Link', 'company.unlink': 'Unlink',
    'company.available': 'Room to link', 'company.noRooms': 'No linked rooms.', 'company.linked': 'Linked {0}.',
    'company.unlinked': 'Unlinked {0}.', 'company.pick': 'Search rooms to link',
    'drafts.title': 'Summary drafts', 'drafts.request': 'Request a draft', 'drafts.from': 'From',
    'drafts.to': 'To', 'drafts.none': 'No drafts yet.', 'drafts.read': 'Read', 'drafts.sources': 'Sources',
    'drafts.model': 'Model', 'drafts.period': '{0} – {1}', 'drafts.hide': 'Close',
    'room.tasks': 'Tasks', 'room.files': 'Files', 'room.members': 'Members', 'room.messages': 'Messages',
    'room.page': 'Room {0}', 'room.synced': 'Last synced {0}', 'room.notSynced': 'Not synced yet.',
    'tasks.body': 'Task', 'tasks.assignee': 'Assignee', 'tasks.assignedBy': 'Assigned by', 'tasks.deadline': 'Deadline',
    'tasks.status': 'Status', 'tasks.room': 'Room', 'tasks.none': 'No tasks.', 'tasks.noneOpen': 'No open tasks.',
    'tasks.noDeadline': 'none', 'tasks.open': 'open', 'tasks.done': 'done', 'tasks.overdue': 'overdue',
    'tasks.more': 'More tasks', 'tasks.filter': 'Show', 'tasks.all': 'All', 'tasks.sort': 'Order',
    'tasks.newest': 'Newest first', 'tasks.byDeadline': 'By deadline', 'company.tasks': 'Open tasks',
    'company.tasksIntro': 'The open Chatwork tasks of the linked rooms, earliest deadline first.',
    'files.name': 'File', 'files.size': 'Size', 'files.by': 'Uploaded by', 'files.at': 'Uploaded',
    'files.state': 'Copy', 'files.none': 'No files.', 'files.more': 'More files', 'files.download': 'Download',
    'files.state.stored': 'stored', 'files.state.pending': 'not copied yet', 'files.state.too_large': 'too large to copy',
    'files.state.failed': 'copy failed',
    'members.name': 'Name', 'members.organization': 'Organization', 'members.department': 'Department',
    'members.role': 'Role', 'members.none': 'No members.',
    'suggestions.title': 'Suggested links', 'suggestions.intro': 'Rooms whose members belong to an organization named like a company. Accepting links the room; nothing is linked without it.',
    'suggestions.room': 'Room', 'suggestions.company': 'Company', 'suggestions.organization': 'Organization',
    'suggestions.members': 'Members', 'suggestions.accept': 'Accept', 'suggestions.dismiss': 'Dismiss',
    'suggestions.accepted': 'Linked {0} to {1}.', 'suggestions.dismissed': 'Dismissed the suggestion of {0}.',
    'suggestions.none': 'No open suggestions.', 'drafts.tasksNote': 'Drafts list the Chatwork tasks of their period (overdue, added, done) before the rooms.',
    'status.title': 'Status', 'status.intro': 'How syncing is going: Chatwork, the last room check, the rate budget, rooms at risk of losing messages, and gaps. Redrawn every 10 s.',
    'status.chatwork': 'Chatwork', 'status.up': 'answering',
    'status.breakerOpen': 'Chatwork looks down since {0}: {1} failures in a row. Requests have stopped but for one probe per interval (next at {2}); syncs resume by themselves once it answers.',
    'status.recentFailures': ' {0} failure(s) in a row, the last at {1}.',
    'status.lastCheck': 'Last room check', 'status.checkedAt': 'Checked', 'status.outcome': 'Outcome',
    'status.trigger': 'Started by', 'status.bySync': 'a sync of all rooms', 'status.rooms': 'Rooms',
    'status.roomCounts': '{0} listed, {1} changed, {2} fetched, {3} deferred',
    'status.unseenMax': 'Most unseen in one room', 'status.fetchJob': 'Fetch job',
    'status.cadence': 'Cadence', 'status.cadenceValue': 'every {0} s; {1} check(s) in the last hour',
    'status.noCheck': 'No room check has run yet.',
    'status.budget': 'Rate budget', 'status.remaining': 'Remaining', 'status.resetAt': 'Resets',
    'status.seenAt': 'As seen', 'status.noBudget': 'Not seen yet.',
    'status.waiting': 'Rooms waiting for a fetch', 'status.waitingSince': '{0}, the longest since {1}',
    'status.limitation': 'Chatwork message limitation',
    'status.atRisk': 'Rooms at risk', 'status.perHour': 'Messages per hour', 'status.perCheck': 'Per check',
    'status.unseen': 'Unseen', 'status.webhook': 'Last webhook', 'status.noWebhook': 'no webhook',
    'status.noRisk': 'No room is near 100 messages between two checks.',
    'status.gaps': 'Gaps in the last 24 hours', 'status.detectedAt': 'Detected', 'status.noGaps': 'No gaps.',
    'charts.title': 'History', 'charts.hour': 'Last hour', 'charts.day': 'Last 24 hours',
    'charts.lastHour': 'In the last hour', 'charts.lastDay': 'In the last 24 hours',
    'charts.asTable': 'Show the numbers', 'charts.time': 'Time', 'charts.nothing': 'Nothing to show.',
    'charts.budget': 'Rate budget used per window', 'charts.used': 'Requests used', 'charts.limit': 'limit {0}',
    'charts.budgetSummary': '{0}, at most {1} of {2} requests of a window were used, over {3} room check(s).',
    'charts.noChecks': '{0}, no room check ran.',
    'charts.rooms': 'Rooms per room check', 'charts.changed': 'Changed', 'charts.fetched': 'Fetched', 'charts.deferred': 'Deferred',
    'charts.roomsSummary': '{0}, the room checks found {1} changed room(s), sent {2} to be fetched and deferred {3}.',
    'charts.unseen': 'Most unseen messages in one room', 'charts.unseenMax': 'Most unseen', 'charts.gapLine': '100: a gap',
    'charts.unseenSummary': '{0}, the most unseen messages in one room were {1} (100 or more is a gap).',
    'charts.webhooks': 'Webhook deliveries', 'charts.stored': 'Stored', 'charts.ignored': 'Ignored',
    'charts.refused': 'Refused', 'charts.failed': 'Not stored',
    'charts.webhooksSummary': '{0}, webhook deliveries: {1} stored, {2} ignored, {3} refused, {4} not stored.',
    'charts.gaps': 'Gaps found', 'charts.gapCount': 'Gaps',
    'charts.gapsSummary': '{0}, fetches found {1} gap(s), about {2} message(s) missed.',
    'charts.noGaps': '{0}, no gaps were found.',
    'check.current': 'current', 'check.fetching': 'fetching', 'check.deferred': 'deferred', 'check.busy': 'busy', 'check.failed': 'failed',
    'error.generic': '{0} ({1})', 'loading': 'Loading…', 'back': 'Back',
  },
  ja: {
    'nav.schedules': 'スケジュール',
    'schedules.title': '定期タスク', 'schedules.intro': 'スケジュールで動くタスクと、その最後の実行・次の開始。「今すぐ実行」はスケジューラーに依頼し、1 分以内に実行されます。一時停止中のタスクは、スケジュールの時刻に「一時停止」の実行を記録するだけで何もしません。',
    'schedules.task': 'タスク', 'schedules.cadence': '間隔', 'schedules.state': '状態', 'schedules.lastRun': '最後の実行',
    'schedules.nextDue': '次の開始', 'schedules.unscheduled': 'スケジュールなし', 'schedules.everyMinutes': '{0} 分ごと',
    'schedules.everyHours': '{0} 時間ごと', 'schedules.everySeconds': '{0} 秒ごと', 'schedules.paused': '一時停止中',
    'schedules.pausedBy': '{0}（{1} から）', 'schedules.active': 'スケジュールどおり', 'schedules.onRequest': '依頼時のみ', 'schedules.dryRun': 'ドライラン',
    'schedules.runNow': '今すぐ実行', 'schedules.dryRunNow': 'ドライラン', 'schedules.pause': '一時停止', 'schedules.resume': '再開',
    'schedules.reason': '一時停止の理由（任意）', 'schedules.requested': '{0} の実行を依頼しました。1 分以内に実行されます。',
    'schedules.requestedDry': '{0} のドライランを依頼しました。何を行うかを示すだけで、何も変更しません。',
    'schedules.pausedNow': '{0} を一時停止しました。', 'schedules.resumed': '{0} はスケジュールどおりに動きます。',
    'schedules.requestedAt': '依頼', 'schedules.report': '報告', 'schedules.noRuns': 'まだ実行はありません。', 'schedules.neverRan': 'まだなし',
    'schedules.back': '← 定期タスク', 'schedules.runsOf': '{0} の実行履歴',
    'task.room-check': 'ルームチェック', 'task.rooms-sync': 'ルーム同期', 'task.messages-sync': '定期メッセージ同期',
    'task.sweep': 'スイープ', 'task.retention': '保持期間の削除', 'task.migrate': 'マイグレーション',
    'run.requested': '依頼済み', 'run.running': '実行中', 'run.completed': '完了', 'run.failed': '失敗',
    'run.paused': '一時停止', 'run.skipped_overlap': 'スキップ（重複）',
    'nav.sync': '同期', 'nav.status': '状況', 'nav.rooms': 'ルーム', 'nav.companies': '会社', 'nav.jobs': 'ジョブ',
    'nav.connections': '接続',
    'connections.title': 'Chatwork の接続', 'connections.intro': 'cwsync はこれらのアカウントで Chatwork を読みます。アカウントごとに見えるルームと API の回数制限があります。トークンは暗号化して保管し、表示しません。',
    'connections.oauth': 'Chatwork で接続', 'connections.oauthOff': 'この環境では「Chatwork で接続」が設定されていません（OAuth クライアントなし）。',
    'connections.token': 'または API トークンを追加', 'connections.add': '追加',
    'connections.connected': '{0} を接続しました。ルームを読み込んでいます。', 'connections.reconnected': '{0} を再接続しました。',
    'connections.changed': '保存しました。', 'connections.none': '接続はまだありません。',
    'connections.bootstrap': 'CHATWORK_API_TOKEN（設定）', 'connections.account': 'アカウント', 'connections.kindHead': '種類',
    'connections.kind.oauth': 'OAuth', 'connections.kind.api_token': 'API トークン',
    'connections.status.active': '有効', 'connections.status.reauth_required': '再接続が必要',
    'connections.status.revoked': '取り消し済み', 'connections.status.disabled': '無効',
    'connections.reauthWho': '{0}（または他の管理者）がこのアカウントを再接続してください。',
    'connections.rooms': 'ルーム数', 'connections.listed': 'ルーム一覧の取得', 'connections.connectedBy': '接続',
    'connections.by': '{0}、{1}', 'connections.disable': '無効にする', 'connections.enable': '有効にする',
    'connections.reconnect': '再接続', 'connections.delete': '削除',
    'connections.confirmDelete': 'この接続とトークンを削除しますか？ルームは残りますが、この接続では読まれなくなります。',
    'signout': 'サインアウト', 'language': '言語', 'skip': '本文へ移動',
    'signin.title': 'サインイン', 'signin.paste': 'トークンを貼り付け', 'signin.token': 'トークン',
    'signin.use': 'このトークンを使う', 'signin.oauth': '組織のアカウントでサインイン',
    'signin.hint': 'ローカル実行ではサインイン済みのコンソールURLが表示されます。`cwsync-local token` で別のトークンも作れます。',
    'signin.failed': 'サインインできませんでした: {0}', 'signin.expired': 'セッションが切れました。もう一度サインインしてください。',
    'who': '{0}（{1}）',
    'role.admin': '管理者', 'role.writer': '編集者', 'role.reader': '閲覧者',
    'sync.title': '同期', 'sync.rooms': 'ルーム一覧を同期', 'sync.messages': '有効なルームのメッセージを同期',
    'sync.intro': 'ルーム同期は Chatwork のルーム一覧を読み込み、メッセージ同期は有効な各ルームの最新メッセージを保存します。',
    'sync.none': '実行中のジョブはありません。', 'sync.adminOnly': '同期を開始できるのは管理者だけです。',
    'sync.recent': '最近の同期',
    'job.cancel': 'キャンセル', 'job.retry': '失敗した項目を再実行', 'job.open': '開く',
    'job.checking': '変更のあったルームを確認中です（このジョブに追加されます）。',
    'job.ended': '{0}が終了しました: {1}。', 'job.started': '{0}を開始しました。', 'job.already': 'この{0}はすでに実行中です。',
    'job.canceled': 'キャンセルしました。', 'job.retried': '失敗した {0} 件の再実行を開始しました。',
    'job.progress': '{0} / {1} {2}', 'job.success': '成功 {0}', 'job.failure': '失敗 {0}',
    'job.type': '種類', 'job.status': '状態', 'job.created': '作成', 'job.startedAt': '開始',
    'job.finished': '終了', 'job.by': '開始した人', 'job.schedule': 'スケジュール', 'job.items': '項目',
    'job.payload': '依頼内容', 'job.result': '結果', 'job.error': 'エラー', 'job.errors': 'エラー',
    'job.gaps': '欠落', 'job.rooms': 'ルーム', 'job.duration': '所要時間', 'job.room': 'ルーム',
    'job.unitRooms': 'ルーム', 'job.unitItems': '項目', 'job.fetched': '取得数', 'job.missed': '取得できなかった数（推定）', 'job.message': 'メッセージ',
    'jobs.title': 'ジョブ', 'jobs.all': 'すべて', 'jobs.filter': '絞り込み', 'jobs.startedBy': '開始した人',
    'jobs.anyone': '全員', 'jobs.me': '自分', 'jobs.none': 'ジョブはありません。', 'jobs.detail': 'ジョブ',
    'type.chatwork_rooms_sync': 'ルーム同期', 'type.chatwork_messages_sync': 'メッセージ同期',
    'type.summary_draft': '要約の下書き',
    'status.queued': '待機中', 'status.processing': '処理中', 'status.completed': '完了',
    'status.failed': '失敗', 'status.canceled': 'キャンセル済み', 'status.unchanged': '変更なし',
    'rooms.title': 'ルーム', 'rooms.search': '名前で検索', 'rooms.active': '有効',
    'rooms.linked': '紐付け', 'rooms.any': 'すべて', 'rooms.yes': 'あり', 'rooms.no': 'なし',
    'rooms.name': '名前', 'rooms.type': '種類', 'rooms.companies': '会社', 'rooms.messages': 'メッセージ数',
    'rooms.lastSync': '最終同期', 'rooms.lastError': '最後のエラー', 'rooms.actions': '操作',
    'rooms.syncNow': '今すぐ同期', 'rooms.gap': '欠落 約{0}件', 'rooms.left': '退出済み', 'rooms.never': '未同期',
    'rooms.none': '該当するルームはありません。', 'rooms.activeToggle': '{0} を同期する', 'rooms.show': '開く',
    'rooms.more': 'さらに表示', 'rooms.updated': '{0} を{1}にしました。', 'rooms.on': '有効', 'rooms.off': '無効',
    'room.none': '保存されたメッセージはありません。', 'room.older': '以前のメッセージ',
    'companies.title': '会社', 'companies.search': '名前で検索', 'companies.create': '作成',
    'companies.name': '会社名', 'companies.none': '会社はありません。', 'companies.created': '{0} を作成しました。',
    'company.rooms': '紐付けられたルーム', 'company.link': '紐付ける', 'company.unlink': '紐付けを外す',
    'company.available': '紐付けるルーム', 'company.noRooms': '紐付けられたルームはありません。', 'company.linked': '{0} を紐付けました。',
    'company.unlinked': '{0} の紐付けを外しました。', 'company.pick': '紐付けるルームを検索',
    'drafts.title': '要約の下書き', 'drafts.request': '下書きを依頼', 'drafts.from': '開始',
    'drafts.to': '終了', 'drafts.none': '下書きはまだありません。', 'drafts.read': '読む', 'drafts.sources': '出典',
    'drafts.model': 'モデル', 'drafts.period': '{0} 〜 {1}', 'drafts.hide': '閉じる',
    'room.tasks': 'タスク', 'room.files': 'ファイル', 'room.members': 'メンバー', 'room.messages': 'メッセージ',
    'room.page': 'ルーム {0}', 'room.synced': '最終同期 {0}', 'room.notSynced': 'まだ同期されていません。',
    'tasks.body': 'タスク', 'tasks.assignee': '担当者', 'tasks.assignedBy': '依頼者', 'tasks.deadline': '期限',
    'tasks.status': '状態', 'tasks.room': 'ルーム', 'tasks.none': 'タスクはありません。', 'tasks.noneOpen': '未完了のタスクはありません。',
    'tasks.noDeadline': 'なし', 'tasks.open': '未完了', 'tasks.done': '完了', 'tasks.overdue': '期限切れ',
    'tasks.more': 'さらに表示', 'tasks.filter': '表示', 'tasks.all': 'すべて', 'tasks.sort': '並び順',
    'tasks.newest': '新しい順', 'tasks.byDeadline': '期限順', 'company.tasks': '未完了のタスク',
    'company.tasksIntro': '紐付けられたルームの未完了の Chatwork タスク（期限の早い順）。',
    'files.name': 'ファイル', 'files.size': 'サイズ', 'files.by': 'アップロードした人', 'files.at': 'アップロード日時',
    'files.state': 'コピー', 'files.none': 'ファイルはありません。', 'files.more': 'さらに表示', 'files.download': 'ダウンロード',
    'files.state.stored': '保存済み', 'files.state.pending': '未コピー', 'files.state.too_large': '大きすぎるためコピーしません',
    'files.state.failed': 'コピー失敗',
    'members.name': '名前', 'members.organization': '組織', 'members.department': '部署',
    'members.role': '権限', 'members.none': 'メンバーはいません。',
    'suggestions.title': '紐付けの提案', 'suggestions.intro': 'メンバーの組織名が会社名と一致するルームです。承認するとルームを紐付けます。承認なしに紐付けることはありません。',
    'suggestions.room': 'ルーム', 'suggestions.company': '会社', 'suggestions.organization': '組織',
    'suggestions.members': '人数', 'suggestions.accept': '承認', 'suggestions.dismiss': '却下',
    'suggestions.accepted': '{0} を {1} に紐付けました。', 'suggestions.dismissed': '{0} の提案を却下しました。',
    'suggestions.none': '未処理の提案はありません。', 'drafts.tasksNote': '下書きには、期間の Chatwork タスク（期限切れ・追加・完了）がルームの前に載ります。',
    'status.title': '状況', 'status.intro': '同期の状況：Chatwork、最後のルームチェック、レート予算、メッセージを失うおそれのあるルーム、欠落。10 秒ごとに更新します。',
    'status.chatwork': 'Chatwork', 'status.up': '応答あり',
    'status.breakerOpen': '{0} から Chatwork が停止しているようです（連続 {1} 回の失敗）。一定間隔で 1 回の確認を除きリクエストを止めています（次回 {2}）。応答が戻れば同期は自動で再開します。',
    'status.recentFailures': ' 連続 {0} 回の失敗、最後は {1}。',
    'status.lastCheck': '最後のルームチェック', 'status.checkedAt': '確認日時', 'status.outcome': '結果',
    'status.trigger': '開始', 'status.bySync': '全ルームの同期', 'status.rooms': 'ルーム',
    'status.roomCounts': '一覧 {0}、変更 {1}、取得 {2}、延期 {3}',
    'status.unseenMax': '1 ルームの最大未取得数', 'status.fetchJob': '取得ジョブ',
    'status.cadence': '間隔', 'status.cadenceValue': '{0} 秒ごと、直近 1 時間で {1} 回',
    'status.noCheck': 'ルームチェックはまだ実行されていません。',
    'status.budget': 'レート予算', 'status.remaining': '残り', 'status.resetAt': 'リセット',
    'status.seenAt': '確認時点', 'status.noBudget': 'まだ確認されていません。',
    'status.waiting': '取得待ちのルーム', 'status.waitingSince': '{0}、最も古いものは {1} から',
    'status.limitation': 'Chatwork のメッセージ制限',
    'status.atRisk': 'リスクのあるルーム', 'status.perHour': '1 時間あたり', 'status.perCheck': 'チェックあたり',
    'status.unseen': '未取得', 'status.webhook': '最後の Webhook', 'status.noWebhook': 'Webhook なし',
    'status.noRisk': '2 回のチェックの間に 100 件近くになるルームはありません。',
    'status.gaps': '直近 24 時間の欠落', 'status.detectedAt': '検出日時', 'status.noGaps': '欠落はありません。',
    'charts.title': '推移', 'charts.hour': '直近 1 時間', 'charts.day': '直近 24 時間',
    'charts.lastHour': '直近 1 時間', 'charts.lastDay': '直近 24 時間',
    'charts.asTable': '数値を表示', 'charts.time': '時刻', 'charts.nothing': '表示するものはありません。',
    'charts.budget': 'ウィンドウごとのレート予算の使用量', 'charts.used': '使用リクエスト数', 'charts.limit': '上限 {0}',
    'charts.budgetSummary': '{0}で、1 ウィンドウの使用リクエスト数は最大 {2} 中 {1}（ルームチェック {3} 回）。',
    'charts.noChecks': '{0}にルームチェックは実行されていません。',
    'charts.rooms': 'ルームチェックごとのルーム数', 'charts.changed': '変更', 'charts.fetched': '取得', 'charts.deferred': '延期',
    'charts.roomsSummary': '{0}で、ルームチェックは変更のあるルームを {1} 件見つけ、{2} 件を取得に回し、{3} 件を延期しました。',
    'charts.unseen': '1 ルームの最大未取得数', 'charts.unseenMax': '最大未取得数', 'charts.gapLine': '100：欠落',
    'charts.unseenSummary': '{0}で、1 ルームの未取得メッセージは最大 {1} 件でした（100 件以上で欠落）。',
    'charts.webhooks': 'Webhook の受信', 'charts.stored': '保存', 'charts.ignored': '無視',
    'charts.refused': '拒否', 'charts.failed': '保存失敗',
    'charts.webhooksSummary': '{0}の Webhook 受信：保存 {1} 件、無視 {2} 件、拒否 {3} 件、保存失敗 {4} 件。',
    'charts.gaps': '検出された欠落', 'charts.gapCount': '欠落',
    'charts.gapsSummary': '{0}で、取得時に欠落を {1} 件検出しました（推定 {2} 件のメッセージが欠けています）。',
    'charts.noGaps': '{0}に欠落は検出されていません。',
    'check.current': '最新', 'check.fetching': '取得中', 'check.deferred': '延期', 'check.busy': '実行中', 'check.failed': '失敗',
    'error.generic': '{0}（{1}）', 'loading': '読み込み中…', 'back': '戻る',
  },
};

const STORE_KEY = 'cwsync.lang';

function initial() {
  const stored = localStorage.getItem(STORE_KEY);
  if (stored && WORDS[stored]) return stored;
  const browser = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
  return browser.toLowerCase().startsWith('ja') ? 'ja' : 'en';
}

let lang = initial();

export function currentLang() { return lang; }

export function setLang(next) {
  if (!WORDS[next]) return;
  lang = next;
  localStorage.setItem(STORE_KEY, next);
  document.documentElement.lang = next;
}

/** The word for `key`, with `{0}`, `{1}`, ... replaced by `args`. */
export function t(key, ...args) {
  const text = WORDS[lang][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\d+)\}/g, (_, i) => String(args[Number(i)] ?? ''));
}

/** A time in the browser's time zone, in the chosen language's style. */
export function time(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return new Intl.DateTimeFormat(lang === 'ja' ? 'ja-JP' : 'en-GB', {
    dateStyle: 'medium', timeStyle: 'medium',
  }).format(date);
}

/** A time to the minute (a task's deadline): seconds say nothing there. */
export function minute(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return new Intl.DateTimeFormat(lang === 'ja' ? 'ja-JP' : 'en-GB', {
    dateStyle: 'medium', timeStyle: 'short',
  }).format(date);
}

/** A Chatwork day (a task's `date` deadline): the day in Tokyo, whose days Chatwork's are. */
export function day(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return new Intl.DateTimeFormat(lang === 'ja' ? 'ja-JP' : 'en-GB', {
    dateStyle: 'medium', timeZone: 'Asia/Tokyo',
  }).format(date);
}

/** A size in bytes, `12 KB`. */
export function bytes(n) {
  const units = ['B', 'KB', 'MB', 'GB'];
  let value = Number(n) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${number(unit ? Math.round(value * 10) / 10 : value)} ${units[unit]}`;
}

/** A duration between two times, `1 min 5 s`. */
export function duration(fromIso, toIso) {
  if (!fromIso) return '—';
  const ms = (toIso ? new Date(toIso) : new Date()) - new Date(fromIso);
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  if (lang === 'ja') return m ? `${m}分${s % 60}秒` : `${s}秒`;
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}

export function number(n) {
  return new Intl.NumberFormat(lang === 'ja' ? 'ja-JP' : 'en-GB').format(n ?? 0);
}
