//! The grid of Rényi orders the accountant tracks.

use alloc::vec::Vec;

/// Google `dp-accounting`'s `DEFAULT_RDP_ORDERS`: 1.1, 1.2, …, 10.9, then 11, 12, …, 63, then
/// 128, 256, 512, 1024 (156 orders), so results can be compared with it order by order.
pub fn default_orders() -> Vec<f64> {
    let mut orders: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    orders.extend((11..64).map(f64::from));
    orders.extend([128.0, 256.0, 512.0, 1024.0]);
    orders
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_grid() {
        let o = super::default_orders();
        assert_eq!(o.len(), 156);
        assert_eq!(o[0], 1.1);
        assert_eq!(o[98], 10.9);
        assert_eq!(o[99], 11.0);
        assert_eq!(o[151], 63.0);
        assert_eq!(o[155], 1024.0);
    }
}
