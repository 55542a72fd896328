//! Keyset pagination in WorkOS's conventions: `limit`, `before`, `after` and `order`.
//!
//! Pages are always found by seeking an index to a key and reading `limit + 1` rows from there,
//! never by `OFFSET`, so the cost of a page does not grow with how deep in the list it is, and
//! rows inserted meanwhile neither repeat nor vanish between pages.
//!
//! WorkOS's orders: `desc` (newest first; `after` moves to older objects), `asc` (oldest first;
//! `after` moves to newer objects) and `normal` (newest first, but `before` moves to older objects
//! and `after` to newer ones). In every order `list_metadata` names the cursors that move from the
//! page in each direction, or `null` where there is nothing more in that direction.

/// Default number of objects in a page.
pub const DEFAULT_LIMIT: u32 = 10;
/// Largest number of objects in a page.
pub const MAX_LIMIT: u32 = 100;

/// The order of a list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (WorkOS's default).
    #[default]
    Desc,
    /// Newest first, with `before` moving to older objects and `after` to newer ones.
    Normal,
}

impl Order {
    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            "normal" => Some(Self::Normal),
            _ => None,
        }
    }
}

/// A position to page from: the key of an object already seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor<K> {
    /// Objects before this one, in the meaning of the list's order.
    Before(K),
    /// Objects after this one, in the meaning of the list's order.
    After(K),
}

/// A request for one page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// How many objects at most (1 to [`MAX_LIMIT`]).
    pub limit: u32,
    /// The list's order.
    pub order: Order,
    /// Where to start; `None` for the first page.
    pub cursor: Option<Cursor<K>>,
}

impl<K> Default for PageRequest<K> {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            order: Order::Desc,
            cursor: None,
        }
    }
}

/// A strict bound on keys for a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyBound<K> {
    /// Only keys strictly greater than this one.
    Above(K),
    /// Only keys strictly less than this one.
    Below(K),
}

/// How a backend reads a page: which direction to scan, from where, and how many rows to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanPlan<K> {
    /// Scan keys in ascending order when true, descending otherwise.
    pub ascending: bool,
    /// The bound to seek to, if any.
    pub bound: Option<KeyBound<K>>,
    /// How many rows to read: one more than the page, to learn whether more exist.
    pub fetch: u32,
}

/// Which way a request moves through the list as displayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Movement {
    First,
    Forward,
    Backward,
}

impl<K: Clone> PageRequest<K> {
    fn displayed_ascending(&self) -> bool {
        self.order == Order::Asc
    }

    fn movement(&self) -> (Movement, Option<&K>) {
        match (&self.cursor, self.order) {
            (None, _) => (Movement::First, None),
            (Some(Cursor::After(key)), Order::Asc | Order::Desc) | (Some(Cursor::Before(key)), Order::Normal) => {
                (Movement::Forward, Some(key))
            }
            (Some(Cursor::Before(key)), Order::Asc | Order::Desc) | (Some(Cursor::After(key)), Order::Normal) => {
                (Movement::Backward, Some(key))
            }
        }
    }

    /// Returns how a backend should scan for this page.
    pub fn plan(&self) -> ScanPlan<K> {
        let displayed_ascending = self.displayed_ascending();
        let fetch = self.limit + 1;
        match self.movement() {
            (Movement::First, _) | (_, None) => ScanPlan {
                ascending: displayed_ascending,
                bound: None,
                fetch,
            },
            (Movement::Forward, Some(key)) => ScanPlan {
                ascending: displayed_ascending,
                bound: Some(if displayed_ascending {
                    KeyBound::Above(key.clone())
                } else {
                    KeyBound::Below(key.clone())
                }),
                fetch,
            },
            // Moving backward reads the rows nearest the cursor first, then flips them.
            (Movement::Backward, Some(key)) => ScanPlan {
                ascending: !displayed_ascending,
                bound: Some(if displayed_ascending {
                    KeyBound::Below(key.clone())
                } else {
                    KeyBound::Above(key.clone())
                }),
                fetch,
            },
        }
    }

    /// Turns the rows a backend read by [`Self::plan`] into a page in display order.
    pub fn finish<T>(&self, mut rows: Vec<T>, key_of: impl Fn(&T) -> K) -> Page<T, K> {
        let limit = self.limit as usize;
        let read_more_than_a_page = rows.len() > limit;
        rows.truncate(limit);
        let (movement, _) = self.movement();
        let (more_forward, more_backward) = match movement {
            Movement::First => (read_more_than_a_page, false),
            Movement::Forward => (read_more_than_a_page, true),
            Movement::Backward => {
                rows.reverse();
                (true, read_more_than_a_page)
            }
        };
        let forward_cursor = if more_forward { rows.last().map(&key_of) } else { None };
        let backward_cursor = if more_backward { rows.first().map(&key_of) } else { None };
        let list_metadata = match self.order {
            Order::Asc | Order::Desc => ListMetadata {
                before: backward_cursor,
                after: forward_cursor,
            },
            Order::Normal => ListMetadata {
                before: forward_cursor,
                after: backward_cursor,
            },
        };
        Page {
            data: rows,
            list_metadata,
        }
    }
}

/// The cursors that move from a page: `None` where nothing more lies in that direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListMetadata<K> {
    /// The cursor to pass as `before`.
    pub before: Option<K>,
    /// The cursor to pass as `after`.
    pub after: Option<K>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T, K> {
    /// The objects, in the list's order.
    pub data: Vec<T>,
    /// Where to go from here.
    pub list_metadata: ListMetadata<K>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages through `0..count` (the keys are the items) the way a backend would.
    fn read(request: &PageRequest<u32>, count: u32) -> Page<u32, u32> {
        let plan = request.plan();
        let mut keys: Vec<u32> = (0..count)
            .filter(|key| match &plan.bound {
                None => true,
                Some(KeyBound::Above(bound)) => key > bound,
                Some(KeyBound::Below(bound)) => key < bound,
            })
            .collect();
        if !plan.ascending {
            keys.reverse();
        }
        keys.truncate(plan.fetch as usize);
        request.finish(keys, |key| *key)
    }

    fn walk(order: Order, count: u32, limit: u32, follow_before: bool) -> Vec<Vec<u32>> {
        let mut pages = Vec::new();
        let mut request = PageRequest {
            limit,
            order,
            cursor: None,
        };
        loop {
            let page = read(&request, count);
            let next = if follow_before {
                page.list_metadata.before
            } else {
                page.list_metadata.after
            };
            pages.push(page.data);
            match next {
                Some(key) => {
                    request.cursor = Some(if follow_before {
                        Cursor::Before(key)
                    } else {
                        Cursor::After(key)
                    });
                }
                None => return pages,
            }
        }
    }

    #[test]
    fn desc_walks_newest_to_oldest_by_after() {
        assert_eq!(walk(Order::Desc, 7, 3, false), [vec![6, 5, 4], vec![3, 2, 1], vec![0]]);
    }

    #[test]
    fn asc_walks_oldest_to_newest_by_after() {
        assert_eq!(walk(Order::Asc, 7, 3, false), [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    }

    #[test]
    fn normal_walks_newest_to_oldest_by_before() {
        assert_eq!(walk(Order::Normal, 7, 3, true), [vec![6, 5, 4], vec![3, 2, 1], vec![0]]);
    }

    #[test]
    fn exact_multiple_of_the_limit_ends_without_an_empty_page() {
        assert_eq!(walk(Order::Desc, 6, 3, false), [vec![5, 4, 3], vec![2, 1, 0]]);
        assert_eq!(walk(Order::Desc, 0, 3, false), [Vec::<u32>::new()]);
    }

    #[test]
    fn before_returns_the_page_nearest_the_cursor_in_display_order() {
        let request = PageRequest {
            limit: 2,
            order: Order::Desc,
            cursor: Some(Cursor::Before(2)),
        };
        let page = read(&request, 7);
        assert_eq!(page.data, [4, 3]);
        assert_eq!(
            page.list_metadata,
            ListMetadata {
                before: Some(4),
                after: Some(3)
            }
        );

        let request = PageRequest {
            limit: 2,
            order: Order::Asc,
            cursor: Some(Cursor::Before(5)),
        };
        let page = read(&request, 7);
        assert_eq!(page.data, [3, 4]);
        assert_eq!(
            page.list_metadata,
            ListMetadata {
                before: Some(3),
                after: Some(4)
            }
        );

        let request = PageRequest {
            limit: 5,
            order: Order::Desc,
            cursor: Some(Cursor::Before(4)),
        };
        let page = read(&request, 7);
        assert_eq!(page.data, [6, 5]);
        assert_eq!(
            page.list_metadata.before, None,
            "the newest object has nothing before it"
        );
    }

    #[test]
    fn normal_after_moves_to_newer_objects() {
        let request = PageRequest {
            limit: 2,
            order: Order::Normal,
            cursor: Some(Cursor::After(2)),
        };
        let page = read(&request, 7);
        assert_eq!(page.data, [4, 3]);
        assert_eq!(
            page.list_metadata,
            ListMetadata {
                before: Some(3),
                after: Some(4)
            }
        );
    }

    #[test]
    fn walking_back_with_before_retraces_the_pages() {
        let mut request = PageRequest {
            limit: 3,
            order: Order::Desc,
            cursor: Some(Cursor::After(1)),
        };
        let last = read(&request, 7);
        assert_eq!(last.data, [0]);
        request.cursor = last.list_metadata.before.map(Cursor::Before);
        let previous = read(&request, 7);
        assert_eq!(previous.data, [3, 2, 1]);
        request.cursor = previous.list_metadata.before.map(Cursor::Before);
        let first = read(&request, 7);
        assert_eq!(first.data, [6, 5, 4]);
        assert_eq!(first.list_metadata.before, None);
    }
}
