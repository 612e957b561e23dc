<?php
class PSS_Ajax {
	public function __construct() {
		add_action( 'wp_ajax_pss_search', array( $this, 'search' ) );
		add_action( 'wp_ajax_nopriv_pss_search', array( $this, 'search' ) );
	}

	public function search() {
		global $wpdb;
		check_ajax_referer( 'pss_search' );
		$term  = isset( $_POST['term'] ) ? sanitize_text_field( wp_unslash( $_POST['term'] ) ) : '';
		$limit = isset( $_GET['limit'] ) ? min( 50, absint( $_GET['limit'] ) ) : 10;
		$like  = '%' . $wpdb->esc_like( $term ) . '%';
		$rows  = $wpdb->get_results(
			$wpdb->prepare( "SELECT ID, post_title FROM {$wpdb->posts} WHERE post_title LIKE %s LIMIT %d", $like, $limit )
		);
		$out = array_map( function ( $r ) {
			return array( 'id' => (int) $r->ID, 'title' => $r->post_title );
		}, $rows );
		wp_send_json_success( $out );
	}
}
new PSS_Ajax();
