//! Schema migrations (sea-orm-migration). Applied by `veza migrate`, and by `veza serve`
//! unless `VEZA_AUTO_MIGRATE=false`.

use sea_orm_migration::prelude::*;

mod m0001_catalogue;
mod m0002_track_change_notify;
mod m0003_accounts;
mod m0004_audit_log;
mod m0005_rate_limits;
mod m0006_outboxes;
mod m0007_takedowns;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_catalogue::Migration),
            Box::new(m0002_track_change_notify::Migration),
            Box::new(m0003_accounts::Migration),
            Box::new(m0004_audit_log::Migration),
            Box::new(m0005_rate_limits::Migration),
            Box::new(m0006_outboxes::Migration),
            Box::new(m0007_takedowns::Migration),
        ]
    }
}
