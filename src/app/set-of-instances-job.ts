/**
 * What the jobs sending a set of instances share (Orthanc's SetOfInstancesJob): the instances' public IDs in
 * sending order, the position of the next one, the ones that failed; progress, reset and saving follow from them.
 */

export interface SetOfInstancesState {
  /** Instances' public IDs, in sending order. */
  instances: string[];
  /** The next instance to send. */
  position: number;
  /** The instances that could not be sent (kept going with `Permissive`). */
  failed: string[];
  description: string;
}

export abstract class SetOfInstancesJob<S extends SetOfInstancesState> {
  protected constructor(protected readonly state: S) {}

  progress(): number {
    return this.state.instances.length === 0 ? 1 : this.state.position / this.state.instances.length;
  }

  serialize(): S {
    return this.state;
  }

  /** Resubmission starts again from the first instance. */
  reset(): void {
    this.state.position = 0;
    this.state.failed = [];
  }

  /** The first fields of the job's public content, as Orthanc's SetOfInstancesJob writes them. */
  protected setContent(): Record<string, unknown> {
    return {
      Description: this.state.description,
      FailedInstancesCount: this.state.failed.length,
      InstancesCount: this.state.instances.length,
    };
  }
}
