//! Plugins built against `deckhand:workflow@0.1.0` run unchanged: its host
//! traits are implemented here by converting its records to 0.2.0's and
//! calling the 0.2.0 host functions, so there is one implementation of
//! every call. A 0.1.0 container spec is a 0.2.0 one with none of the new
//! fields set, which the host journals exactly as it did before 0.2.0 (a
//! journal recorded with a 0.1.0 plugin replays the same).

use super::bindings::v1::deckhand::workflow as v1;
use super::bindings::{
    ContainerInfo, ContainerSpec, HostCallError, HostError, HostResult, LogLevel, Revision,
    container, job, state,
};
use super::host_state::HostState;

fn spec_of(s: v1::types::ContainerSpec) -> ContainerSpec {
    ContainerSpec {
        name: s.name,
        image: s.image,
        env: s.env,
        cmd: s.cmd,
        network: s.network,
        entrypoint: None,
        user: None,
        workdir: None,
        labels: Vec::new(),
        ports: Vec::new(),
        mounts: Vec::new(),
        networks: Vec::new(),
        restart: None,
        memory_bytes: None,
        nano_cpus: None,
        health_check: None,
        stop_timeout_s: None,
    }
}

fn info_of(i: ContainerInfo) -> v1::types::ContainerInfo {
    v1::types::ContainerInfo {
        id: i.id,
        name: i.name,
        image: i.image,
        running: i.running,
        health: i.health,
        exit_code: i.exit_code,
    }
}

fn revision_of(r: Revision) -> v1::types::Revision {
    v1::types::Revision {
        number: r.number,
        image: r.image,
        container_id: r.container_id,
        spec: r.spec,
    }
}

fn level_of(l: v1::types::LogLevel) -> LogLevel {
    match l {
        v1::types::LogLevel::Debug => LogLevel::Debug,
        v1::types::LogLevel::Info => LogLevel::Info,
        v1::types::LogLevel::Warn => LogLevel::Warn,
        v1::types::LogLevel::Error => LogLevel::Error,
    }
}

impl v1::types::Host for HostState {
    fn convert_host_error(&mut self, err: HostCallError) -> wasmtime::Result<v1::types::HostError> {
        Ok(match err {
            HostCallError::Trap(t) => return Err(t),
            HostCallError::Plugin(e) => match e {
                HostError::Runtime(m) => v1::types::HostError::Runtime(m),
                HostError::Cancelled => v1::types::HostError::Cancelled,
                HostError::Denied(m) => v1::types::HostError::Denied(m),
                HostError::Invalid(m) => v1::types::HostError::Invalid(m),
                HostError::NotFound(m) => v1::types::HostError::NotFound(m),
                HostError::TimedOut(m) => v1::types::HostError::TimedOut(m),
            },
        })
    }
}

impl v1::container::Host for HostState {
    async fn image_present(&mut self, image: String) -> HostResult<bool> {
        container::Host::image_present(self, image).await
    }

    async fn pull_image(&mut self, image: String) -> HostResult<()> {
        container::Host::pull_image(self, image).await
    }

    async fn create_container(&mut self, spec: v1::types::ContainerSpec) -> HostResult<String> {
        container::Host::create_container(self, spec_of(spec)).await
    }

    async fn start_container(&mut self, id: String) -> HostResult<()> {
        container::Host::start_container(self, id).await
    }

    async fn stop_container(&mut self, id: String, timeout_s: u32) -> HostResult<()> {
        container::Host::stop_container(self, id, timeout_s).await
    }

    async fn rename_container(&mut self, id: String, new_name: String) -> HostResult<()> {
        container::Host::rename_container(self, id, new_name).await
    }

    async fn remove_container(&mut self, id: String) -> HostResult<()> {
        container::Host::remove_container(self, id).await
    }

    async fn remove_container_at_commit(&mut self, id: String) -> HostResult<()> {
        container::Host::remove_container_at_commit(self, id).await
    }

    async fn remove_image_at_commit(&mut self, image: String) -> HostResult<()> {
        container::Host::remove_image_at_commit(self, image).await
    }

    async fn inspect_container(
        &mut self,
        id_or_name: String,
    ) -> HostResult<Option<v1::types::ContainerInfo>> {
        Ok(container::Host::inspect_container(self, id_or_name)
            .await?
            .map(info_of))
    }

    async fn wait_healthy(
        &mut self,
        id: String,
        timeout_s: u32,
    ) -> HostResult<v1::types::ContainerInfo> {
        Ok(info_of(
            container::Host::wait_healthy(self, id, timeout_s).await?,
        ))
    }
}

impl v1::job::Host for HostState {
    async fn id(&mut self) -> wasmtime::Result<String> {
        job::Host::id(self).await
    }

    async fn target(&mut self) -> wasmtime::Result<String> {
        job::Host::target(self).await
    }

    async fn params(&mut self) -> wasmtime::Result<String> {
        job::Host::params(self).await
    }

    async fn set_phase(&mut self, phase: String) -> wasmtime::Result<()> {
        job::Host::set_phase(self, phase).await
    }

    async fn log(&mut self, level: v1::types::LogLevel, message: String) -> wasmtime::Result<()> {
        job::Host::log(self, level_of(level), message).await
    }

    async fn cancel_requested(&mut self) -> wasmtime::Result<bool> {
        job::Host::cancel_requested(self).await
    }

    async fn register_compensation(&mut self, action: String, data: String) -> HostResult<()> {
        job::Host::register_compensation(self, action, data).await
    }

    async fn compensating(&mut self) -> wasmtime::Result<bool> {
        job::Host::compensating(self).await
    }

    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        job::Host::now_ms(self).await
    }

    async fn random_u64(&mut self) -> wasmtime::Result<u64> {
        job::Host::random_u64(self).await
    }
}

impl v1::state::Host for HostState {
    async fn current_revision(&mut self) -> wasmtime::Result<Option<v1::types::Revision>> {
        Ok(state::Host::current_revision(self).await?.map(revision_of))
    }

    async fn lookup_revision(
        &mut self,
        number: u64,
    ) -> wasmtime::Result<Option<v1::types::Revision>> {
        Ok(state::Host::lookup_revision(self, number)
            .await?
            .map(revision_of))
    }

    async fn record_revision(
        &mut self,
        image: String,
        container_id: String,
        spec: String,
    ) -> HostResult<u64> {
        state::Host::record_revision(self, image, container_id, spec).await
    }

    async fn delete_target_at_commit(&mut self) -> HostResult<()> {
        state::Host::delete_target_at_commit(self).await
    }
}
