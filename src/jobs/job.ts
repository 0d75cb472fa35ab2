/**
 * What a job is (Orthanc's `IJob`): a sequence of steps the engine runs one after the other, so that a job can be
 * paused or cancelled between two steps, resumed later, and saved (its state serialised) to resume after a
 * restart. A job type (`JobType`) rebuilds a saved job from what its `serialize()` returned.
 */
import type { ErrorCode } from '../core/errors.js';

/** Orthanc's job states (JobState in OrthancFramework Enumerations.h). */
export type JobState = 'Pending' | 'Running' | 'Success' | 'Failure' | 'Paused' | 'Retry';

/** What a step answers (Orthanc's JobStepResult). */
export type JobStepResult =
  /** More steps to run. */
  | { code: 'continue' }
  /** The job is done. */
  | { code: 'success' }
  /** The job failed: `error` becomes its ErrorCode, `details` its ErrorDetails. */
  | { code: 'failure'; error: ErrorCode; details?: string }
  /** Run the job again (from where it is) after `timeoutMs`; the job waits in state Retry. */
  | { code: 'retry'; timeoutMs: number };

export const StepResult = {
  continue: (): JobStepResult => ({ code: 'continue' }),
  success: (): JobStepResult => ({ code: 'success' }),
  failure: (error: ErrorCode, details?: string): JobStepResult => ({ code: 'failure', error, details }),
  retry: (timeoutMs: number): JobStepResult => ({ code: 'retry', timeoutMs }),
};

/** Why a job leaves the Running state (Orthanc's JobStopReason, plus the engine stopping). */
export type JobStopReason = 'success' | 'failure' | 'paused' | 'canceled' | 'retry' | 'shutdown';

/** A file a job produced, served by `GET /jobs/{id}/{key}` once the job has succeeded. */
export interface JobOutput {
  /** The file, usually in `JobRuntime.workDirectory()`. Deleted with the output, or with the job. */
  path: string;
  mimeType: string;
  /** Sent as the Content-Disposition file name when present. */
  filename?: string;
}

/** What a running step receives from the engine. */
export interface JobRuntime {
  /** The job's ID. */
  readonly id: string;
  /**
   * Aborted when the job is cancelled or when pacsnode stops. A long step may watch it and end early: it then
   * throws (or returns a failure) and must leave the job as it was before the step (a stopped job resumes at the
   * next start from its last saved state).
   */
  readonly signal: AbortSignal;
  /**
   * A folder for this job's files (created on first call, removed with the job). It lives in a temporary folder of
   * this run of pacsnode: files in it do not survive a restart, as Orthanc's job outputs do not.
   */
  workDirectory(): Promise<string>;
  /** Publishes a file as the output `key` of the job (`GET /jobs/{id}/{key}` once the job has succeeded). */
  setOutput(key: string, output: JobOutput): void;
}

export interface Job {
  /** Orthanc's job type (`Type` in `/jobs/{id}`): also the name of the `JobType` that restores a saved job. */
  readonly type: string;
  /** Runs one step. A thrown error fails the job (a `PacsError` gives its code, anything else InternalError). */
  step(runtime: JobRuntime): Promise<JobStepResult>;
  /** Progress, 0..1. */
  progress(): number;
  /** The type-specific `Content` of `/jobs/{id}` (Orthanc's GetPublicContent). */
  content(): Record<string, unknown>;
  /**
   * The job's state as JSON, for saving it (`SaveJobs`) so that it resumes after a restart; undefined when this
   * job cannot be saved (it is then lost at a restart, as Orthanc's archive jobs are).
   */
  serialize(): unknown;
  /** Back to the first step: `POST /jobs/{id}/resubmit` of a failed job. */
  reset(): void;
  /** Called when the job leaves the Running state (to release a connection, for instance). */
  stop?(reason: JobStopReason): void | Promise<void>;
}

/** Restores saved jobs of one type (Orthanc's IJobUnserializer, one per type). */
export interface JobType {
  /** Equal to the `type` of the jobs it restores. */
  readonly name: string;
  /** A job from what its `serialize()` returned; throws when that cannot be used (the saved job is then dropped). */
  restore(serialized: unknown): Job;
}

/** `/jobs/{id}` as Orthanc formats it (JobInfo::Format). */
export interface JobInfo {
  ID: string;
  Priority: number;
  ErrorCode: number;
  ErrorDescription: string;
  ErrorDetails: string;
  State: JobState;
  Timestamp: string;
  CreationTime: string;
  EffectiveRuntime: number;
  Progress: number;
  Type: string;
  Content: Record<string, unknown>;
  EstimatedTimeOfArrival?: string;
  CompletionTime?: string;
}
