//! Shoal's origin: upstream fetch, metainfo and seeding (not built yet; see
//! the origin issue).
