<?php
/**
 * Plugin Name: Picket Sample Settings
 * Description: Adds a settings page for the sample feature.
 */
if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

add_action( 'admin_menu', 'pss_add_menu' );
add_action( 'admin_init', 'pss_save_settings' );

function pss_add_menu() {
	add_options_page( 'Sample Settings', 'Sample', 'manage_options', 'pss', 'pss_render_page' );
}

function pss_save_settings() {
	if ( ! isset( $_POST['pss_nonce'] ) ) {
		return;
	}
	check_admin_referer( 'pss_save', 'pss_nonce' );
	if ( ! current_user_can( 'manage_options' ) ) {
		wp_die( esc_html__( 'Not allowed', 'pss' ) );
	}
	$title = isset( $_POST['pss_title'] ) ? sanitize_text_field( wp_unslash( $_POST['pss_title'] ) ) : '';
	$count = isset( $_POST['pss_count'] ) ? absint( $_POST['pss_count'] ) : 10;
	update_option( 'pss_title', $title );
	update_option( 'pss_count', $count );
	add_settings_error( 'pss', 'saved', __( 'Settings saved.', 'pss' ), 'updated' );
}

function pss_render_page() {
	$title = get_option( 'pss_title', '' );
	?>
	<div class="wrap">
		<h1><?php echo esc_html( get_admin_page_title() ); ?></h1>
		<form method="post">
			<?php wp_nonce_field( 'pss_save', 'pss_nonce' ); ?>
			<input type="text" name="pss_title" value="<?php echo esc_attr( $title ); ?>">
			<?php submit_button(); ?>
		</form>
	</div>
	<?php
}
