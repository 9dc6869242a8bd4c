import type { CreateExportParams, ExportDownload, ExportFormat, ExportJob } from '../../types.js'
import { FINISHED_EXPORT_STATUSES } from '../../wait-for-export.js'
import { MAX_OPTION, collect, maxItems } from '../collect.js'
import type { Command, CommandContext } from '../command.js'
import type { ExitOutcome } from '../exit-codes.js'
import { expectFields, expectRows } from '../expect-fields.js'
import { withLocalFiles } from '../file-errors.js'
import { formatDetails, formatTable } from '../format-table.js'
import {
  flag,
  optionalInteger,
  optionalString,
  requiredInt64,
  requiredString,
} from '../option-values.js'
import { formatBytes, formatElapsed } from '../progress.js'
import { UsageError } from '../usage-error.js'

const FORMATS: readonly ExportFormat[] = ['csv', 'parquet']

/** Nanoseconds since the epoch, shown to the millisecond (enough to read, not to compute). */
function time(ns: string): string {
  return new Date(Number(BigInt(ns) / 1_000_000n)).toISOString()
}

/** The fields the views read. */
const FIELDS = ['id', 'status', 'datastream_id', 'start_time', 'end_time', 'format', 'created_at']

function details(job: ExportJob): string {
  expectFields(job, 'an export job', FIELDS)
  const pairs: [string, string][] = [
    ['ID', job.id],
    ['Status', job.status],
    ['Datastream', String(job.datastream_id)],
    ['Range', `${time(job.start_time)} .. ${time(job.end_time)}`],
    ['Format', job.format],
    ['Created', job.created_at],
    ['Started', job.started_at ?? '-'],
    ['Finished', job.finished_at ?? '-'],
  ]
  if (job.reason !== undefined) pairs.push(['Reason', job.reason])
  return formatDetails(pairs)
}

function artifactTable(download: ExportDownload): string {
  return formatTable(download.artifacts, [
    { header: 'FILENAME', value: (row) => row.filename },
    { header: 'BYTES', value: (row) => String(row.bytes) },
    { header: 'URL', value: (row) => row.url },
  ])
}

/** Waits for the job, showing its status and the time waited on a terminal. */
async function waitForExport(context: CommandContext, job: ExportJob): Promise<ExportJob> {
  if (FINISHED_EXPORT_STATUSES.has(job.status)) return job
  const startedAt = Date.now()
  const show = (status: string) => {
    context.progress.update(
      `Export ${job.id}: ${status}, ${formatElapsed(Date.now() - startedAt)} elapsed`,
    )
  }
  show(job.status)
  // Redrawn every second, so that the elapsed time moves between two reads of the job.
  let status: string = job.status
  const ticker = setInterval(() => {
    show(status)
  }, 1_000)
  try {
    const finished = await context.client.exports.waitFor(job.id, {
      ...context.call,
      onProgress: ({ job: current }) => {
        status = current.status
        show(status)
      },
    })
    show(finished.status)
    return finished
  } finally {
    clearInterval(ticker)
    context.progress.done()
  }
}

/** Saves the files into `directory`, showing files and bytes on a terminal. */
async function saveFiles(context: CommandContext, id: string, directory: string): Promise<void> {
  const written = await withLocalFiles(`cannot write into ${directory}`, async () => {
    try {
      return await context.client.exports.downloadFiles(id, directory, {
        ...context.call,
        onProgress: (progress) => {
          context.progress.update(
            `Downloading file ${String(progress.file)}/${String(progress.files)}: ${formatBytes(progress.bytes)} of ${formatBytes(progress.totalBytes)}`,
          )
        },
      })
    } finally {
      context.progress.done()
    }
  })
  for (const path of written) context.info(`Saved ${path}`)
}

function change(verb: 'cancel' | 'delete', summary: string, done: string): Command {
  return {
    summary,
    positionals: ['ID'],
    mutation: true,
    async run({ client, positionals, mutation, print }) {
      const [id = ''] = positionals
      await client.exports[verb](id, mutation)
      print({ id, result: verb === 'cancel' ? 'canceled' : 'deleted' }, () => `${done} ${id}`)
      return undefined
    },
  }
}

export const exportCommands: Readonly<Record<string, Command>> = {
  create: {
    summary: 'Export recorded data of a datastream over a time range',
    options: {
      datastream: { type: 'string', placeholder: 'N', description: 'the datastream ID (required)' },
      start: {
        type: 'string',
        placeholder: 'TIME',
        description: 'range start: ISO 8601 or integer nanoseconds (required)',
      },
      end: { type: 'string', placeholder: 'TIME', description: 'range end, exclusive (required)' },
      schema: {
        type: 'string',
        placeholder: 'NAME|ID',
        description: 'a built-in schema name or a sch_ ID (default raw)',
      },
      format: { type: 'string', placeholder: 'FORMAT', description: 'csv (default) or parquet' },
      wait: { type: 'boolean', description: 'wait until the export has finished' },
      download: {
        type: 'string',
        placeholder: 'DIR',
        description: 'wait, then save the files into DIR',
      },
    },
    mutation: true,
    async run(context): Promise<ExitOutcome | undefined> {
      const { client, options, mutation, print } = context
      const format = optionalString(options, 'format')
      const chosenFormat = FORMATS.find((known) => known === format)
      if (format !== undefined && chosenFormat === undefined) {
        throw new UsageError(`--format must be csv or parquet, got "${format}"`)
      }
      const schema = optionalString(options, 'schema')
      const params: CreateExportParams = {
        datastream_id: requiredInt64(options, 'datastream'),
        start_time: requiredString(options, 'start'),
        end_time: requiredString(options, 'end'),
        ...(schema === undefined ? {} : { schema }),
        ...(chosenFormat === undefined ? {} : { format: chosenFormat }),
      }
      const directory = optionalString(options, 'download')
      let job = await client.exports.create(params, mutation)
      if (flag(options, 'wait') || directory !== undefined) job = await waitForExport(context, job)
      print(job, () => details(job))
      if (job.status !== 'succeeded') {
        return FINISHED_EXPORT_STATUSES.has(job.status) ? 'export_failed' : undefined
      }
      if (directory !== undefined) await saveFiles(context, job.id, directory)
      return undefined
    },
  },
  list: {
    summary: 'List export jobs, newest first',
    options: {
      limit: { type: 'string', placeholder: 'N', description: 'items per request' },
      max: MAX_OPTION,
    },
    async run({ client, options, call, print }) {
      const limit = optionalInteger(options, 'limit')
      const jobs: ExportJob[] = await collect(
        client.exports.iterate(limit === undefined ? {} : { limit }, call),
        maxItems(options),
      )
      print(jobs, () =>
        formatTable(expectRows(jobs, 'a list of export jobs', FIELDS), [
          { header: 'ID', value: (row) => row.id },
          { header: 'STATUS', value: (row) => row.status },
          { header: 'DATASTREAM', value: (row) => String(row.datastream_id) },
          { header: 'START', value: (row) => time(row.start_time) },
          { header: 'END', value: (row) => time(row.end_time) },
          { header: 'FORMAT', value: (row) => row.format },
        ]),
      )
      return undefined
    },
  },
  get: {
    summary: 'Show one export job',
    positionals: ['ID'],
    async run({ client, positionals, call, print }) {
      const job = await client.exports.get(positionals[0] ?? '', call)
      print(job, () => details(job))
      return undefined
    },
  },
  cancel: change('cancel', 'Stop a queued or running export', 'Canceled'),
  delete: change('delete', 'Delete an export job and its files', 'Deleted'),
  download: {
    summary: "List a finished export's files, or save them with --dir",
    positionals: ['ID'],
    options: {
      dir: { type: 'string', placeholder: 'DIR', description: 'save the files into DIR' },
    },
    async run(context) {
      const [id = ''] = context.positionals
      const directory = optionalString(context.options, 'dir')
      if (directory !== undefined) {
        await saveFiles(context, id, directory)
        return undefined
      }
      const download = await context.client.exports.download(id, context.call)
      context.print(download, () => artifactTable(download))
      return undefined
    },
  },
}
