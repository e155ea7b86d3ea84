//! The latest observation, parsed once per change and shared by every page that shows
//! depths (a dashboard over 10,000 queues would otherwise parse it per request), its
//! queues sorted by vhost and name once (the listing's default order) and indexed by
//! their owners.

use std::sync::{Arc, Mutex};

use sea_orm::{DatabaseConnection, DbErr};

use super::Snapshot;

/// A snapshot and the digest it was read at.
type Cached = (String, Arc<Snapshot>);

#[derive(Clone, Default)]
pub struct SnapshotCache(Arc<Mutex<Option<Cached>>>);

impl SnapshotCache {
    /// The latest observation: from memory while its digest is unchanged (one small
    /// read); a cycle that changed nothing only moves its cycle and time.
    pub async fn latest(&self, db: &DatabaseConnection) -> Result<Arc<Snapshot>, DbErr> {
        let Some(stamp) = super::stamp(db).await? else {
            return Ok(Arc::new(Snapshot::default()));
        };
        if let Ok(mut guard) = self.0.lock()
            && let Some((d, snap)) = guard.as_mut()
            && *d == stamp.digest
            && !stamp.digest.is_empty()
        {
            if snap.cycle != stamp.cycle || snap.observed_at != stamp.observed_at {
                *snap = Arc::new(Snapshot {
                    cycle: stamp.cycle,
                    observed_at: stamp.observed_at,
                    queues: snap.queues.clone(),
                    nodes: snap.nodes.clone(),
                    owners: snap.owners.clone(),
                });
            }
            return Ok(snap.clone());
        }
        let (mut queues, nodes) = super::latest(db).await?;
        queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        let snap = Arc::new(Snapshot {
            cycle: stamp.cycle,
            observed_at: stamp.observed_at,
            owners: Some(Arc::new(super::owners_of(&queues))),
            queues: Arc::new(queues),
            nodes,
        });
        if let Ok(mut guard) = self.0.lock() {
            *guard = Some((stamp.digest, snap.clone()));
        }
        Ok(snap)
    }
}
