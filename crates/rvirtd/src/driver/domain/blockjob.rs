//! Block jobs, as libvirt 9.0's QEMU driver runs an active commit
//! (qemuDomainBlockCommit, qemuDomainGetBlockJobInfo,
//! qemuDomainBlockJobAbort, qemu_blockjob.c): QMP `block-commit` of a
//! disk's overlay into the image right below under libvirt's job name
//! (`commit-vda-libvirt-1-format`), the VMM's BLOCK_JOB_READY,
//! BLOCK_JOB_COMPLETED and BLOCK_JOB_CANCELLED turned into libvirt's
//! BLOCK_JOB and BLOCK_JOB_2 events (what `virsh blockcommit --wait`
//! listens for), the pivot with `block-job-complete`, an abort with
//! `block-job-cancel`, each waited for and the job dismissed. After a
//! pivot the live and persistent definitions name the base again, the
//! overlay's nodes are deleted and its owner given back.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rvirt_domain::xml::Element;
use rvirt_qmp::ReceivedEvent;
use rvirt_remote::consts::block_job as bj;
use rvirt_remote::error::{code, from};
use rvirt_remote::{NonnullDomain, RemoteError};
use serde_json::{json, Value};

use super::registry::Running;
use super::DomainDriver;

/// How long a pivot or an abort may take to finish in the VMM.
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);

/// The block graph state rvirtd keeps for a running VM.
#[derive(Default)]
pub struct BlockState {
    /// The node right below each overlay node a snapshot put on top.
    below: Mutex<HashMap<String, String>>,
    /// The running job of each disk, by target.
    jobs: Mutex<BTreeMap<String, Job>>,
}

impl BlockState {
    /// Records that `overlay` was put on top of `node`.
    pub fn stacked(&self, node: &str, overlay: &str) {
        self.below
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(overlay.to_string(), node.to_string());
    }

    fn below(&self, node: &str) -> Option<String> {
        self.below
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .cloned()
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Clone)]
struct Job {
    /// The VMM's job id (libvirt's job name).
    id: String,
    target: String,
    /// The disk's path when the job started (its overlay).
    path: String,
    top_node: String,
    ready: bool,
    /// A pivot or abort is under way: its caller reports the end.
    finishing: bool,
}

fn invalid(msg: &str) -> RemoteError {
    RemoteError::new(code::INVALID_ARG, from::QEMU, Some(msg))
}

fn qmp_failed(what: &str, e: &rvirt_qmp::ClientError) -> RemoteError {
    RemoteError::operation_failed(&format!("{what}: {}", crate::error_chain(e)))
}

/// The disk a block call names, by target or source path, as libvirt's
/// qemuDomainDiskByName finds it.
fn disk_index(def: &rvirt_domain::Domain, name: &str) -> Result<usize, RemoteError> {
    def.devices
        .disks
        .iter()
        .position(|d| d.target_dev == name || d.source_path() == Some(name))
        .ok_or_else(|| invalid(&format!("disk '{name}' not found in domain")))
}

/// The entry of `id` in `query-block-jobs`, if listed.
fn query_job(run: &Running, id: &str) -> Result<Option<Value>, RemoteError> {
    let jobs = run
        .qmp
        .execute("query-block-jobs", None)
        .map_err(|e| qmp_failed("query-block-jobs", &e))?;
    Ok(jobs
        .as_array()
        .into_iter()
        .flatten()
        .find(|j| j["device"] == id)
        .cloned())
}

impl DomainDriver {
    /// DOMAIN_BLOCK_COMMIT: an active commit of the disk's overlay into
    /// the image right below it.
    pub fn block_commit(
        &self,
        dom: &NonnullDomain,
        disk: &str,
        base: Option<&str>,
        top: Option<&str>,
        bandwidth: u64,
        flags: u32,
    ) -> Result<(), RemoteError> {
        RemoteError::check_flags(
            flags,
            bj::COMMIT_ACTIVE | bj::COMMIT_BANDWIDTH_BYTES,
            "qemuDomainBlockCommit",
        )?;
        let (job, _) = self.job_of(dom)?;
        let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, run) = self.running(dom)?;
        let live = run.live();
        let d = &live.devices.disks[disk_index(&live, disk)?];
        let target = d.target_dev.clone();
        if run.blocks.jobs().contains_key(&target) {
            return Err(RemoteError::new(
                code::BLOCK_COPY_ACTIVE,
                from::QEMU,
                Some(&format!("disk '{target}' already in active block job")),
            ));
        }
        let path = d.source_path().unwrap_or_default().to_string();
        let below = d
            .backing_store
            .as_ref()
            .and_then(|b| b.child("source"))
            .and_then(|s| s.attr("file").or_else(|| s.attr("dev")))
            .map(str::to_string);
        let Some(below) = below else {
            return Err(invalid(&format!(
                "top '{path}' in chain for '{target}' has no backing file"
            )));
        };
        if top.is_some_and(|t| t != path && t != target) {
            return Err(RemoteError::new(
                code::ARGUMENT_UNSUPPORTED,
                from::QEMU,
                Some("commit of an image below the active layer is not supported"),
            ));
        }
        if base.is_some_and(|b| b != below && b != format!("{target}[1]")) {
            return Err(RemoteError::new(
                code::ARGUMENT_UNSUPPORTED,
                from::QEMU,
                Some("commit into an image other than the one right below the active layer is not supported"),
            ));
        }
        if flags & bj::COMMIT_ACTIVE == 0 {
            return Err(invalid(&format!(
                "commit of '{target}' active layer requires active flag"
            )));
        }
        let (tops, _) = super::snapshot::top_nodes(&run)?;
        let Some(top_node) = tops.get(&target).cloned() else {
            return Err(RemoteError::operation_failed(&format!(
                "disk '{target}' not found in the VMM"
            )));
        };
        // A node rvirtd stacked, else the chain from the start, numbered
        // down from the top as the command line numbered it.
        let base_node = run.blocks.below(&top_node).or_else(|| {
            let n: u64 = top_node
                .strip_prefix("libvirt-")?
                .strip_suffix("-format")?
                .parse()
                .ok()?;
            Some(format!("libvirt-{}-format", n.checked_sub(1)?))
        });
        let Some(base_node) = base_node else {
            return Err(RemoteError::operation_failed(&format!(
                "no node below '{top_node}'"
            )));
        };
        let id = format!("commit-{target}-{base_node}");
        let speed = if flags & bj::COMMIT_BANDWIDTH_BYTES != 0 {
            bandwidth
        } else {
            bandwidth.saturating_mul(1 << 20)
        };
        let mut args = json!({
            "job-id": id,
            "device": top_node,
            "top-node": top_node,
            "base-node": base_node,
            "auto-finalize": true,
            "auto-dismiss": false,
        });
        if speed > 0 {
            args["speed"] = json!(speed);
        }
        // Recorded first: the READY event may come before the reply.
        run.blocks.jobs().insert(
            target.clone(),
            Job {
                id: id.clone(),
                target: target.clone(),
                path,
                top_node,
                ready: false,
                finishing: false,
            },
        );
        if let Err(e) = run.qmp.execute("block-commit", Some(args)) {
            run.blocks.jobs().remove(&target);
            return Err(qmp_failed("block-commit", &e));
        }
        tracing::info!(domain = %dom.name, disk = target, job = id, "block commit started");
        Ok(())
    }

    /// DOMAIN_GET_BLOCK_JOB_INFO: `None` when the disk has no job.
    pub fn block_job_info(
        &self,
        dom: &NonnullDomain,
        disk: &str,
        flags: u32,
    ) -> Result<Option<(i32, u64, u64, u64)>, RemoteError> {
        RemoteError::check_flags(flags, bj::INFO_BANDWIDTH_BYTES, "qemuDomainGetBlockJobInfo")?;
        let (_, run) = self.running(dom)?;
        let live = run.live();
        let target = live.devices.disks[disk_index(&live, disk)?]
            .target_dev
            .clone();
        let Some(job) = run.blocks.jobs().get(&target).cloned() else {
            return Ok(None);
        };
        let Some(j) = query_job(&run, &job.id)? else {
            return Ok(None);
        };
        let (mut cur, mut end) = (
            j["offset"].as_u64().unwrap_or(0),
            j["len"].as_u64().unwrap_or(0),
        );
        let ready = j["ready"].as_bool().unwrap_or(false);
        // As libvirt reports it: a job is at 100% only once ready.
        if ready {
            end = end.max(1);
            cur = end;
        } else if cur == end && end > 0 {
            cur -= 1;
        }
        let speed = j["speed"].as_u64().unwrap_or(0);
        let bandwidth = if flags & bj::INFO_BANDWIDTH_BYTES != 0 {
            speed
        } else {
            speed >> 20
        };
        Ok(Some((bj::TYPE_ACTIVE_COMMIT, bandwidth, cur, end)))
    }

    /// DOMAIN_BLOCK_JOB_ABORT: with PIVOT, the disk switches to the base
    /// once the job is ready; without, the job is cancelled and the disk
    /// stays on its overlay. Either is waited for (ASYNC too: the event
    /// follows all the same).
    pub fn block_job_abort(
        &self,
        dom: &NonnullDomain,
        disk: &str,
        flags: u32,
    ) -> Result<(), RemoteError> {
        RemoteError::check_flags(
            flags,
            bj::ABORT_ASYNC | bj::ABORT_PIVOT,
            "qemuDomainBlockJobAbort",
        )?;
        let (lock, name) = self.job_of(dom)?;
        let _job = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, run) = self.running(dom)?;
        let live = run.live();
        let index = disk_index(&live, disk)?;
        let target = live.devices.disks[index].target_dev.clone();
        let pivot = flags & bj::ABORT_PIVOT != 0;
        let job = {
            let mut jobs = run.blocks.jobs();
            let Some(job) = jobs.get_mut(&target) else {
                return Err(RemoteError::operation_invalid(&format!(
                    "disk {target} does not have an active block job"
                )));
            };
            if pivot && !job.ready {
                return Err(RemoteError::new(
                    code::BLOCK_COPY_ACTIVE,
                    from::QEMU,
                    Some(&format!("block job '{}' not ready for pivot yet", job.id)),
                ));
            }
            job.finishing = true;
            job.clone()
        };
        let verb = if pivot {
            "block-job-complete"
        } else {
            "block-job-cancel"
        };
        let ended = run
            .qmp
            .execute(verb, Some(json!({ "device": job.id })))
            .map_err(|e| qmp_failed(verb, &e))
            .and_then(|_| self.wait_concluded(&run, &job.id));
        let error = match ended {
            Ok(error) => error,
            Err(e) => {
                if let Some(j) = run.blocks.jobs().get_mut(&target) {
                    j.finishing = false;
                }
                return Err(e);
            }
        };
        let _ = run
            .qmp
            .execute("job-dismiss", Some(json!({ "id": job.id })));
        run.blocks.jobs().remove(&target);
        let handle = self.reg().domains.get(&name).map(|e| e.handle());
        let status = match (&error, pivot) {
            (Some(_), _) => bj::FAILED,
            (None, true) => bj::COMPLETED,
            (None, false) => bj::CANCELED,
        };
        if status == bj::COMPLETED {
            self.pivoted(&name, &run, index, &job);
        }
        if let Some(h) = &handle {
            self.events
                .block_job(h, &job.path, &target, bj::TYPE_ACTIVE_COMMIT, status);
        }
        match error {
            Some(e) => Err(RemoteError::operation_failed(&format!(
                "block job '{}' failed: {e}",
                job.id
            ))),
            None => Ok(()),
        }
    }

    /// Waits until job `id` has concluded; its error, if it failed.
    fn wait_concluded(&self, run: &Running, id: &str) -> Result<Option<String>, RemoteError> {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        loop {
            match query_job(run, id)? {
                None => return Ok(None),
                Some(j) if j["status"] == "concluded" || j["status"] == "null" => {
                    return Ok(j["error"].as_str().map(str::to_string));
                }
                Some(_) => {}
            }
            if Instant::now() > deadline {
                return Err(RemoteError::new(
                    code::OPERATION_TIMEOUT,
                    from::QEMU,
                    Some(&format!("block job '{id}' did not finish")),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After a pivot: the overlay's nodes deleted, its owner given back,
    /// the live and persistent definitions on the base again.
    fn pivoted(&self, name: &str, run: &Arc<Running>, index: usize, job: &Job) {
        let storage = job.top_node.replace("-format", "-storage");
        for node in [&job.top_node, &storage] {
            if let Err(e) = run
                .qmp
                .execute("blockdev-del", Some(json!({ "node-name": node })))
            {
                tracing::warn!(domain = name, node, error = %e, "cannot delete a committed node");
            }
        }
        run.unlabel(Path::new(&job.path));
        let mut live = (*run.live()).clone();
        let (base, base_format) = {
            let d = &mut live.devices.disks[index];
            let below = d
                .backing_store
                .take()
                .unwrap_or_else(|| Element::new("backingStore"));
            let source = below.child("source").cloned();
            let format = below
                .child("format")
                .and_then(|f| f.attr("type"))
                .unwrap_or("raw")
                .to_string();
            d.source = source;
            d.driver.get_or_insert_with(Default::default).format = Some(format.clone());
            d.backing_store = below.child("backingStore").cloned();
            (d.source_path().unwrap_or_default().to_string(), format)
        };
        run.set_live(live);
        self.save_record(name, run);
        let stored = self
            .reg()
            .domains
            .get(name)
            .and_then(|e| e.config.as_ref().map(|c| c.domain()));
        if let Some(Ok(def)) = stored {
            let mut def = (*def).clone();
            let mut changed = false;
            for d in def.devices.disks.iter_mut() {
                if d.target_dev == job.target && d.source_path() == Some(job.path.as_str()) {
                    let mut s = Element::new("source");
                    s.set_attr("file", base.clone());
                    d.source = Some(s);
                    d.driver.get_or_insert_with(Default::default).format =
                        Some(base_format.clone());
                    changed = true;
                }
            }
            if changed {
                if let Err(e) = self.define(&def.to_inactive_xml()) {
                    tracing::warn!(domain = name, error = %e, "cannot redefine after a pivot");
                }
            }
        }
        tracing::info!(domain = name, disk = job.target, "block commit pivoted");
    }

    /// The VMM's block job events, from the follower: READY, and an end
    /// nobody is waiting for (a failure), as libvirt's events.
    pub fn on_block_job_event(&self, name: &str, run: &Arc<Running>, ev: &ReceivedEvent) {
        let Some(id) = ev
            .data
            .as_ref()
            .and_then(|d| d["device"].as_str())
            .map(str::to_string)
        else {
            return;
        };
        let job = {
            let mut jobs = run.blocks.jobs();
            let Some(job) = jobs.values_mut().find(|j| j.id == id) else {
                return;
            };
            if ev.event == "BLOCK_JOB_READY" {
                job.ready = true;
            }
            job.clone()
        };
        let status = match ev.event.as_str() {
            "BLOCK_JOB_READY" => bj::READY,
            _ if job.finishing => return,
            "BLOCK_JOB_COMPLETED" => {
                let failed = ev.data.as_ref().is_some_and(|d| d.get("error").is_some());
                if failed {
                    bj::FAILED
                } else {
                    bj::COMPLETED
                }
            }
            "BLOCK_JOB_CANCELLED" => bj::CANCELED,
            _ => return,
        };
        if status != bj::READY {
            let _ = run.qmp.execute("job-dismiss", Some(json!({ "id": id })));
            run.blocks.jobs().remove(&job.target);
        }
        let handle = self.reg().domains.get(name).map(|e| e.handle());
        if let Some(h) = handle {
            self.events
                .block_job(&h, &job.path, &job.target, bj::TYPE_ACTIVE_COMMIT, status);
        }
    }
}
